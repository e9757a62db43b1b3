/**
 * Parses `--name value` pairs of whole numbers for the test tools' command lines (chaos, fuzz). `flags` gives each
 * accepted name its default and smallest value; anything else is an error that quotes `usage`.
 */
export function wholeNumberArgs<K extends string>(
  argv: readonly string[],
  flags: Readonly<Record<K, { readonly default: number; readonly min: number }>>,
  usage: string,
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of Object.keys(flags) as K[]) out[k] = flags[k].default;
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const key = flag.replace(/^--/, '') as K;
    if (!flag.startsWith('--') || !(key in flags)) throw new Error(`unknown option ${flag}; usage: ${usage}`);
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < flags[key].min) {
      throw new Error(`${flag} expects a whole number >= ${flags[key].min}, got ${value ?? 'nothing'}`);
    }
    out[key] = n;
  }
  return out;
}
