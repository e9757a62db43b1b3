/**
 * Linearizability of the chaos kv history, per key, with the simulator's checker and kv model (Wing–Gong/Lowe with
 * memoization; operations with an unknown outcome may have taken effect at any point after their call, or never).
 */
import { checkLinearizability } from '../sim/linearizability.js';
import { isUnknownOutput, kvModel, type KvOperation } from '../sim/kv-model.js';

/** Search steps for the whole history: a verdict that does not depend on machine speed. */
export const KV_CHECK_BUDGET = 100_000_000;

export interface KvCheckResult {
  readonly keys: number;
  readonly operations: number;
  /** Writes whose outcome the client never learned. */
  readonly unknown: number;
  readonly steps: number;
  /** The budget ran out: nothing was proven either way. */
  readonly timedOut: boolean;
  /** Why the history is not linearizable, when it is not. */
  readonly violation?: string;
}

export function checkKv(history: readonly KvOperation[], budget = KV_CHECK_BUDGET): KvCheckResult {
  const r = checkLinearizability(kvModel, history, { budget });
  return {
    keys: new Set(history.map((op) => op.input.key)).size,
    operations: history.length,
    unknown: history.filter((op) => isUnknownOutput(op.output) && op.input.op !== 'get').length,
    steps: r.steps,
    timedOut: r.timedOut,
    ...(r.ok || r.timedOut ? {} : { violation: r.explanation }),
  };
}
