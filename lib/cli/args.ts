/** A usage mistake: the CLI prints it with the command's help and exits with EXIT.usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The target is not in a state the command may act on (a data dir that is not empty or is in use, an output file that
 * exists): nothing was changed. Exit code EXIT.refused.
 */
export class RefusedError extends Error {
  override name = 'RefusedError';
}

export const EXIT = { ok: 0, failed: 1, usage: 2, refused: 3 } as const;

export interface ParsedArgs {
  readonly positional: string[];
  /** Every value of each option, in order (`--address a --address b`). */
  readonly options: Map<string, string[]>;
  readonly flags: Set<string>;
}

/**
 * `--name value`, `--name=value`, boolean `--flag`s and positionals; `-h` is `--help`. `spec` names the options that
 * take a value and the flags; anything else is a UsageError naming it.
 */
export function parseArgs(argv: readonly string[], spec: { readonly options: readonly string[]; readonly flags: readonly string[] }): ParsedArgs {
  const positional: string[] = [];
  const options = new Map<string, string[]>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      flags.add('help');
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (spec.flags.includes(name) || name === 'help') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    if (!spec.options.includes(name)) throw new UsageError(`unknown option --${name}`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      i++;
    }
    options.set(name, [...(options.get(name) ?? []), value]);
  }
  return { positional, options, flags };
}

/** The last value of an option, or undefined. */
export function option(args: ParsedArgs, name: string): string | undefined {
  return args.options.get(name)?.at(-1);
}
