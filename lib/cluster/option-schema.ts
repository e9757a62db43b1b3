/**
 * A small schema for options: each option's accepted shape, how an error names what is expected, and the CATGA_*
 * variable that can give it. The options' TypeScript types are derived from the schema (OptionsOf), so the keys the
 * code accepts, their types and their checks cannot drift apart.
 */
export interface OptionSpec<T> {
  /** What a valid value looks like, for the error message. */
  readonly expected: string;
  /** The variables that can give it, and their value (when the environment is read), parsed; undefined when not set. */
  readonly fromEnv?: EnvSource;
  /** Never shown in an error message. */
  readonly secret?: boolean;
  /** What an error message shows of a value that holds a secret in one of its fields. */
  readonly redact?: (value: unknown) => unknown;
  is(value: unknown): value is T;
}

/** The options object a schema describes: every key optional and read-only; doc comments carry over to the keys. */
export type OptionsOf<S> = { readonly [K in keyof S]?: S[K] extends OptionSpec<infer T> ? T : never };

type Extra<T> = Partial<Pick<OptionSpec<T>, 'fromEnv' | 'secret' | 'redact'>>;

function option<T>(expected: string, is: (v: unknown) => boolean, extra: Extra<T> = {}): OptionSpec<T> {
  return { expected, ...extra, is: is as (v: unknown) => v is T };
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export const opt = {
  boolean: (extra?: Extra<boolean>) => option<boolean>('true or false', (v) => typeof v === 'boolean', extra),
  /** A number > 0; `whole` also requires an integer. */
  positive: (whole = false, extra?: Extra<number>) =>
    option<number>(whole ? 'a whole number > 0' : 'a number > 0', (v) => finite(v) && v > 0 && (!whole || Number.isInteger(v)), extra),
  wholeOrZero: (extra?: Extra<number>) => option<number>('a whole number >= 0', (v) => finite(v) && Number.isInteger(v) && v >= 0, extra),
  oneOf: <const T extends string>(values: readonly T[], extra?: Extra<T>) =>
    option<T>(values.map((x) => `'${x}'`).join(' or '), (v) => values.includes(v as T), extra),
  custom: <T>(expected: string, is: (v: unknown) => boolean, extra?: Extra<T>) => option<T>(expected, is, extra),
};

export interface EnvSource {
  readonly names: readonly string[];
  read(env: NodeJS.ProcessEnv): unknown;
}

/** Reads one variable as text. */
export const envText = (name: string): EnvSource => ({ names: [name], read: (env) => env[name] });
/** Reads one variable as a comma-separated list. */
export const envList = (name: string): EnvSource => ({
  names: [name],
  read: (env) => {
    const v = env[name];
    return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  },
});
/** Reads one variable as a number (a text that is none stays text, so the check names it). */
export const envNumber = (name: string): EnvSource => ({
  names: [name],
  read: (env) => {
    const v = env[name];
    return v === undefined || v.trim() === '' || Number.isNaN(Number(v)) ? v : Number(v);
  },
});
