/**
 * Sequential specification of the replicated KV store (DESIGN.md §3) for the linearizability checker.
 *
 * Versions count writes to a key since it was (re)created: put on an absent key → 1, each put or successful cas →
 * version + 1, delete → 0 with value null. A put after a delete starts at 1 again, so (value, version) pairs can
 * repeat across a delete and a cas can succeed on a re-created key (ABA); the model allows exactly that.
 *
 * What to record: every operation whose result the client saw, and every operation whose outcome it never learned
 * (timeout, crash) as `{ unknown: true }`. Leave out operations known not to have taken effect (e.g. refused
 * before being proposed), and reads that are not linearizable by contract (local reads).
 */
import type { Model, Operation } from './linearizability.js';

export type { Model, Operation } from './linearizability.js';

export type KvInput =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string }
  /** `expectedVersion` 0 means the key must be absent. */
  | { readonly op: 'cas'; readonly key: string; readonly expectedVersion: number; readonly value: string };

export type KvOutput =
  /** get: the value (null when absent, version 0); put / delete / successful cas: the new version (delete → 0). */
  | { readonly ok: true; readonly value?: string | null; readonly version: number }
  /** cas failed: the current version. Only cas can fail with a known outcome. */
  | { readonly ok: false; readonly version: number }
  /** The client never learned the outcome: it may or may not have taken effect. */
  | { readonly unknown: true };

export interface KvState {
  readonly value: string | null;
  readonly version: number;
}

export type KvOperation = Operation<KvInput, KvOutput>;

const ABSENT: KvState = Object.freeze({ value: null, version: 0 });

export function isUnknownOutput(output: KvOutput): output is { readonly unknown: true } {
  return 'unknown' in output;
}

/** The state after `input` takes effect successfully from `state`; a cas on the wrong version changes nothing. */
function apply(state: KvState, input: KvInput): KvState {
  switch (input.op) {
    case 'get':
      return state;
    case 'put':
      return { value: input.value, version: state.version + 1 };
    case 'delete':
      return ABSENT;
    case 'cas':
      return state.version === input.expectedVersion ? { value: input.value, version: state.version + 1 } : state;
  }
}

function allows(state: KvState, input: KvInput, output: Exclude<KvOutput, { unknown: true }>): boolean {
  if (!output.ok) {
    return input.op === 'cas' && state.version !== input.expectedVersion && output.version === state.version;
  }
  switch (input.op) {
    case 'get':
      // Strict `===`: a get output without `value` is a recording bug and must not pass as "absent".
      return output.value === state.value && output.version === state.version;
    case 'put':
      return output.version === state.version + 1;
    case 'delete':
      return output.version === 0;
    case 'cas':
      return state.version === input.expectedVersion && output.version === state.version + 1;
  }
}

function describeOutput(input: KvInput, output: KvOutput): string {
  if (isUnknownOutput(output)) return 'unknown';
  if (!output.ok) return `failed, at v${output.version}`;
  if (input.op !== 'get') return `ok v${output.version}`;
  return output.value === null ? `absent v${output.version}` : `${JSON.stringify(output.value)} v${output.version}`;
}

function describeInput(input: KvInput): string {
  const key = JSON.stringify(input.key);
  switch (input.op) {
    case 'get':
      return `get(${key})`;
    case 'put':
      return `put(${key}, ${JSON.stringify(input.value)})`;
    case 'delete':
      return `delete(${key})`;
    case 'cas':
      return `cas(${key}, v${input.expectedVersion}, ${JSON.stringify(input.value)})`;
  }
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => ABSENT,

  step(state, input, output) {
    // An unknown outcome constrains nothing: if linearized at all, the op took effect (the checker covers
    // "never took effect" by not linearizing it).
    if (isUnknownOutput(output)) return { ok: true, state: apply(state, input) };
    if (!allows(state, input, output)) return { ok: false, state };
    return { ok: true, state: apply(state, input) };
  },

  equal: (a, b) => a.value === b.value && a.version === b.version,

  // The 'v'/'-' marker keeps null apart from any string value.
  hash: (s) => (s.value === null ? `${s.version}-` : `${s.version}v${s.value}`),

  /**
   * One partition per key, in order of first appearance (deterministic). Unknown-outcome gets are dropped: they
   * change nothing and constrain nothing. Other unknown-outcome ops get `return: Infinity`, since a client that
   * gave up learns nothing about when the op took effect, even if it recorded the time it gave up.
   */
  partition(history) {
    const byKey = new Map<string, KvOperation[]>();
    for (const op of history) {
      let normalized = op;
      if (isUnknownOutput(op.output)) {
        if (op.input.op === 'get') continue;
        if (op.return !== Infinity) normalized = { ...op, return: Infinity };
      }
      let ops = byKey.get(op.input.key);
      if (ops === undefined) {
        ops = [];
        byKey.set(op.input.key, ops);
      }
      ops.push(normalized);
    }
    return [...byKey.values()];
  },

  partitionKey: (history) => history[0].input.key,

  hints(history) {
    // Versions at which reads observed each value, and how many operations write it.
    const observedAt = new Map<string, Set<number>>();
    const writers = new Map<string, number>();
    for (const op of history) {
      const { input, output } = op;
      if (input.op === 'put' || input.op === 'cas') writers.set(input.value, (writers.get(input.value) ?? 0) + 1);
      if (input.op === 'get' && !isUnknownOutput(output) && output.ok && typeof output.value === 'string') {
        const versions = observedAt.get(output.value) ?? new Set<number>();
        observedAt.set(output.value, versions.add(output.version));
      }
    }
    // JSON keeps the parts apart; null (not a string) stands for "a value no read returned".
    const cls = (...parts: (string | number | null)[]): string => JSON.stringify(parts);
    const seen = (value: string): string | null => (observedAt.has(value) ? value : null);
    return {
      // Unknown deletes are all alike. Unknown puts (and cas with the same expected version) are alike when they
      // write the same value, or values no read returned: then only their effect on the version shows.
      symmetryClasses: history.map((op) => {
        if (!isUnknownOutput(op.output)) return undefined;
        const input = op.input;
        switch (input.op) {
          case 'get':
          case 'delete':
            return cls(input.op);
          case 'put':
            return cls('put', seen(input.value));
          case 'cas':
            return cls('cas', input.expectedVersion, seen(input.value));
        }
      }),
      // A write of a value that reads observed and that nothing else writes must produce one of the observed
      // (value, version) pairs; anywhere else that read could not be satisfied.
      admissible(state, index) {
        const input = history[index].input;
        if (input.op !== 'put' && input.op !== 'cas') return true;
        const versions = observedAt.get(input.value);
        return versions === undefined || writers.get(input.value) !== 1 || versions.has(state.version + 1);
      },
    };
  },

  describeOperation: (input, output) => `${describeInput(input)} → ${describeOutput(input, output)}`,

  describeState: (s) => (s.value === null ? `absent (v${s.version})` : `${JSON.stringify(s.value)} (v${s.version})`),
};
