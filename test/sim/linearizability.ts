/**
 * Linearizability checker in the style of Porcupine: Wing & Gong's search with Lowe's improvements — a cache of
 * (set of linearized operations, model state) pairs that were already explored, and per-partition (per-key)
 * checking, which turns one exponential search into many small ones.
 *
 * Beyond Porcupine, for operations whose outcome is unknown (they may be linearized anywhere after their call, or
 * never, so they multiply the search space): the search succeeds once every known-outcome operation is placed,
 * tries known-outcome operations first, treats a configuration as seen when one with fewer unknown-outcome
 * operations and the same state was seen, and takes pruning hints from the model (see `SearchHints`).
 *
 * Pure and deterministic: no I/O, no randomness. The only clock read is for the optional `timeoutMs`; the
 * simulator uses `budget` (a count of search steps) so that a verdict never depends on machine speed.
 */

/**
 * One client operation: its invocation and response times and what it returned.
 *
 * Real-time order: A must precede B iff `A.return < B.call`. Equal times (`A.return === B.call`) count as
 * concurrent, because two events stamped with the same clock reading cannot be ordered by it.
 *
 * `return === Infinity` means the outcome is unknown (the client timed out or crashed): the operation may take
 * effect at any point after its call, or never. The model's `step` must accept such an operation from any state.
 */
export interface Operation<I, O> {
  readonly clientId: number;
  readonly input: I;
  readonly call: number;
  readonly output: O;
  readonly return: number;
}

/** A sequential specification of the object under test. States must be treated as immutable values. */
export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `state`; `ok` is false when `output` is not a possible result from `state`. */
  step(state: S, input: I, output: O): { ok: boolean; state: S };
  equal(a: S, b: S): boolean;
  /** Equal states must hash equally; collisions are resolved with `equal`. */
  hash(state: S): string;
  /** Splits the history into independent sub-histories (e.g. per key); each is checked on its own. */
  partition?(history: readonly Operation<I, O>[]): Operation<I, O>[][];
  /** A name for a partition in results (e.g. its key). */
  partitionKey?(history: readonly Operation<I, O>[]): string;
  /** Optional knowledge that prunes the search for one partition; see `SearchHints`. */
  hints?(history: readonly Operation<I, O>[]): SearchHints<S>;
  describeOperation?(input: I, output: O): string;
  describeState?(state: S): string;
}

/**
 * Pruning rules a model may supply for one partition. Each must keep at least one linearization whenever one
 * exists; the checker's verdict is then unchanged, only reached sooner. Indexes refer to the partition's array.
 * All concern unknown-outcome operations, which otherwise can be placed almost anywhere: with many timed-out
 * writes, a failing search (which must try everything) would explore all those placements.
 */
export interface SearchHints<S> {
  /**
   * One class name (or undefined) per operation. Unknown-outcome operations with the same class must be
   * interchangeable: the same effect from every state, and nothing else in the partition able to tell them apart.
   * Only the earliest-called unused member of a class is then tried. Ignored for known outcomes.
   */
  readonly symmetryClasses?: readonly (string | undefined)[];
  /**
   * False when applying unknown-outcome operation `index` to `state` cannot be part of any linearization (e.g. it
   * writes a value that reads observed only at other versions).
   */
  admissible?(state: S, index: number): boolean;
}

export interface CheckOptions {
  /** Wall-clock limit for the whole check. Makes the verdict machine-dependent; prefer `budget`. */
  readonly timeoutMs?: number;
  /** Maximum number of search steps over all partitions: a deterministic alternative to `timeoutMs`. */
  readonly budget?: number;
}

export interface CheckResult {
  /** True only when every partition was proven linearizable. */
  readonly ok: boolean;
  /** The budget or time ran out before a verdict; `ok` is then false but nothing was proven wrong. */
  readonly timedOut: boolean;
  /** When `!ok`: the partition that failed or was being searched when time ran out. */
  readonly key?: string;
  /** When `!ok`: the longest linearizable prefix found and the operations none of which could come next. */
  readonly explanation?: string;
  /** Search steps taken, to size `budget`. */
  readonly steps: number;
}

export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult {
  validate(history);
  const meter = new Meter(opts);
  const partitions = model.partition ? model.partition(history) : [history.slice()];
  for (let p = 0; p < partitions.length; p++) {
    const ops = partitions[p];
    if (ops.length === 0) continue;
    // A partition function may rewrite operations (e.g. normalize unknown outcomes), so check again.
    validate(ops);
    const key = model.partitionKey ? model.partitionKey(ops) : `partition ${p}`;
    const label = model.partitionKey ? `key ${JSON.stringify(key)}` : key;
    const outcome = search(model, ops, model.hints?.(ops) ?? {}, meter);
    if (outcome.kind === 'timeout') {
      const explanation = `${label}: search stopped after ${meter.steps} steps without a verdict (budget or timeout).`;
      return { ok: false, timedOut: true, key, explanation, steps: meter.steps };
    }
    if (outcome.kind === 'fail') {
      return { ok: false, timedOut: false, key, explanation: explain(model, ops, label, outcome), steps: meter.steps };
    }
  }
  return { ok: true, timedOut: false, steps: meter.steps };
}

function validate<I, O>(history: readonly Operation<I, O>[]): void {
  for (const op of history) {
    // `!(a >= b)` also rejects NaN.
    if (!Number.isFinite(op.call) || !(op.return >= op.call)) {
      throw new RangeError(`operation of client ${op.clientId} has invalid times [${op.call}, ${op.return}]`);
    }
  }
}

class Meter {
  steps = 0;
  private readonly budget: number;
  private readonly deadline: number;

  constructor(opts: CheckOptions) {
    this.budget = opts.budget ?? Infinity;
    this.deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  }

  /** Counts one step; false once the budget or the deadline is exhausted. */
  tick(): boolean {
    if (this.steps >= this.budget) return false;
    this.steps++;
    // Reading the clock on every step would cost more than the step itself.
    return this.deadline === Infinity || this.steps % 1024 !== 0 || Date.now() <= this.deadline;
  }
}

type SearchOutcome<S> =
  | { readonly kind: 'ok' }
  | { readonly kind: 'timeout' }
  | {
      readonly kind: 'fail';
      /** Op indexes of the longest linearizable prefix found, in linearization order. */
      readonly prefix: readonly number[];
      /** Model state after `prefix`. */
      readonly state: S;
      /** All nodes in time order (see `search`). */
      readonly order: readonly number[];
    };

// Node numbering shared by `search` and `explain`: node 0 is the list head; op i owns call node 2i+1 and return
// node 2i+2, so a node's op and kind are arithmetic and the list fits in two typed arrays.
const opOf = (node: number): number => (node - 1) >> 1;
const isCall = (node: number): boolean => (node & 1) === 1;

/**
 * Depth-first search for a linearization over a doubly linked list of call/return events in time order. The
 * candidates at any point are the calls before the first remaining return (an operation whose return is listed
 * cannot be preceded by operations called after it). Linearizing an operation "lifts" its call and return out
 * of the list; backtracking "unlifts" them (dancing links), so each step is O(1) apart from the model and cache.
 */
function search<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  hints: SearchHints<S>,
  meter: Meter,
): SearchOutcome<S> {
  const n = ops.length;
  const order: number[] = [];
  for (let i = 0; i < n; i++) order.push(2 * i + 1, 2 * i + 2);
  const time = (node: number): number => (isCall(node) ? ops[opOf(node)].call : ops[opOf(node)].return);
  order.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    // Calls before returns at equal times: that is what makes equal times concurrent.
    if (isCall(a) !== isCall(b)) return isCall(a) ? -1 : 1;
    return a - b;
  });

  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let tail = 0;
  for (const node of order) {
    next[tail] = node;
    prev[node] = tail;
    tail = node;
  }
  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call]] = next[call];
    prev[next[call]] = prev[call]; // a call is always followed by at least its own return
    next[prev[ret]] = next[ret];
    if (next[ret] !== -1) prev[next[ret]] = prev[ret];
  };
  // Exact inverse of `lift`; valid because lifts are undone in LIFO order.
  const unlift = (call: number): void => {
    const ret = call + 1;
    next[prev[ret]] = ret;
    if (next[ret] !== -1) prev[next[ret]] = ret;
    next[prev[call]] = call;
    prev[next[call]] = call;
  };

  // Unknown-outcome ops (return = Infinity) never have to be linearized: one that never took effect is the same
  // as one linearized after everything else, which any state accepts. So the search succeeds as soon as every
  // op with a known outcome is linearized, and it tries unknown ops only after the known ones at each point.
  const unknown = new Uint8Array(n);
  let knownLeft = 0;
  for (let i = 0; i < n; i++) {
    if (ops[i].return === Infinity) unknown[i] = 1;
    else knownLeft++;
  }
  if (knownLeft === 0) return { kind: 'ok' };

  const admissible = hints.admissible;

  // Symmetry classes: rank[i] is the position of unknown op i among its class in call order; used[c] counts the
  // linearized members of class c, which are always its first used[c] members, so op i is eligible iff
  // rank[i] === used[classOf[i]].
  const classOf = new Int32Array(n).fill(-1);
  const rank = new Int32Array(n);
  const used: number[] = [];
  const classes = hints.symmetryClasses;
  if (classes) {
    const ids = new Map<string, number>();
    for (const node of order) {
      const i = opOf(node);
      const name = classes[i];
      if (!isCall(node) || unknown[i] === 0 || name === undefined) continue;
      let c = ids.get(name);
      if (c === undefined) {
        c = used.length;
        ids.set(name, c);
        used.push(0);
      }
      classOf[i] = c;
      rank[i] = used[c]++;
    }
    used.fill(0);
  }

  // Cache of visited configurations (linearized set, state). Lowe's memoization skips a configuration seen
  // before; here a configuration is also skipped when one with the same known ops and state but a subset of its
  // unknown-outcome ops was seen: every completion of the larger one completes the smaller one too (the extra
  // unknown ops simply never take effect). This is sound even while the smaller one is still being explored on
  // the current path: if a linearization exists, take a visited configuration with the shortest completion; the
  // first step of that completion was not skipped, or what it was skipped for would have a shorter one.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const knownMask = new Uint32Array(words);
  for (let i = 0; i < n; i++) if (unknown[i] === 0) knownMask[i >>> 5] |= 1 << (i & 31);
  let knownHash = 0; // XOR of per-op salts of the linearized known ops: O(1) to update
  const cache = new Map<string, { bits: Uint32Array; state: S }[]>();
  const toggle = (i: number): void => {
    bits[i >>> 5] ^= 1 << (i & 31);
    if (unknown[i] === 0) knownHash ^= mix(i + 1);
  };
  /** Records the current (bits, state); false if it or a configuration dominating it was seen. */
  const remember = (state: S): boolean => {
    const key = `${knownHash}:${knownLeft}:${model.hash(state)}`;
    let bucket = cache.get(key);
    if (bucket === undefined) {
      bucket = [];
      cache.set(key, bucket);
    } else {
      for (const seen of bucket) {
        if (dominates(seen.bits, bits, knownMask) && model.equal(seen.state, state)) return false;
      }
    }
    bucket.push({ bits: bits.slice(), state });
    return true;
  };

  let state = model.init();
  const stack: number[] = [];
  const saved: S[] = [];
  // The prefix that placed the most known-outcome ops so far, for the explanation (unknown ones can always be
  // appended, which would only pad it). best[0, same) equals stack[0, same), so updating best copies only the
  // part that changed since: amortized O(1) per step.
  const knownTotal = knownLeft;
  const best: number[] = [];
  let bestKnown = 0;
  let bestState = state;
  let same = 0;

  let entry = next[0];
  // Phase 1 tries ops with a known outcome, phase 2 unknown ones (see above).
  let phase: 1 | 2 = 1;
  for (;;) {
    if (!meter.tick()) return { kind: 'timeout' };
    if (isCall(entry)) {
      const i = opOf(entry);
      const eligible =
        phase === 1
          ? unknown[i] === 0
          : unknown[i] === 1 &&
            (classOf[i] < 0 || rank[i] === used[classOf[i]]) &&
            (admissible === undefined || admissible(state, i));
      if (eligible) {
        const r = model.step(state, ops[i].input, ops[i].output);
        if (r.ok) {
          toggle(i);
          if (unknown[i] === 0) knownLeft--;
          if (remember(r.state)) {
            stack.push(i);
            saved.push(state);
            state = r.state;
            if (classOf[i] >= 0) used[classOf[i]]++;
            if (knownLeft === 0) return { kind: 'ok' };
            if (knownTotal - knownLeft > bestKnown) {
              for (let k = same; k < stack.length; k++) best[k] = stack[k];
              best.length = stack.length;
              same = stack.length;
              bestKnown = knownTotal - knownLeft;
              bestState = state;
            }
            lift(entry);
            entry = next[0];
            phase = 1;
            continue;
          }
          toggle(i);
          if (unknown[i] === 0) knownLeft++;
        }
      }
      entry = next[entry];
    } else if (phase === 1) {
      phase = 2;
      entry = next[0];
    } else {
      // Every candidate failed here: undo the last linearized op and try the candidates after it.
      const i = stack.pop();
      if (i === undefined) return { kind: 'fail', prefix: best, state: bestState, order };
      state = saved.pop() as S;
      toggle(i);
      if (classOf[i] >= 0) used[classOf[i]]--;
      if (unknown[i] === 0) knownLeft++;
      if (same > stack.length) same = stack.length;
      const call = 2 * i + 1;
      unlift(call);
      entry = next[call];
      phase = unknown[i] === 1 ? 2 : 1;
    }
  }
}

/** Same known ops linearized in both, and `seen`'s unknown ops a subset of `cur`'s. */
function dominates(seen: Uint32Array, cur: Uint32Array, knownMask: Uint32Array): boolean {
  for (let w = 0; w < seen.length; w++) {
    if ((seen[w] & ~cur[w]) !== 0 || (cur[w] & ~seen[w] & knownMask[w]) !== 0) return false;
  }
  return true;
}

/** A 32-bit integer hash (lowbias32) so that XOR-combined salts rarely collide. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

const SHOWN = 6;

function explain<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  label: string,
  fail: Extract<SearchOutcome<S>, { kind: 'fail' }>,
): string {
  const show = (i: number): string => {
    const op = ops[i];
    const what = model.describeOperation ? model.describeOperation(op.input, op.output) : JSON.stringify(op.input);
    const end = op.return === Infinity ? '∞' : String(op.return);
    return `${what}  [client ${op.clientId}, ${op.call}..${end}]`;
  };
  const lines = [`${label} is not linearizable.`];
  const { prefix } = fail;
  const placedKnown = prefix.filter((i) => ops[i].return !== Infinity).length;
  const knownTotal = ops.filter((op) => op.return !== Infinity).length;
  lines.push(`Longest linearizable prefix found: ${placedKnown} of ${knownTotal} operations with a known outcome`);
  lines.push(`(${prefix.length} in all, counting unknown-outcome ones placed as having taken effect):`);
  if (prefix.length > SHOWN) lines.push(`  ... ${prefix.length - SHOWN} earlier`);
  for (let k = Math.max(0, prefix.length - SHOWN); k < prefix.length; k++) lines.push(`  ${k + 1}. ${show(prefix[k])}`);
  const stateText = model.describeState ? model.describeState(fail.state) : model.hash(fail.state);
  lines.push(`State after it: ${stateText}.`);

  // Rebuild the candidates at that point: calls of unplaced ops before the first unplaced return.
  const placed = new Uint8Array(ops.length);
  for (const i of prefix) placed[i] = 1;
  const known: number[] = [];
  let unknownCount = 0;
  let blocker = -1;
  for (const node of fail.order) {
    const i = opOf(node);
    if (placed[i] === 1) continue;
    if (!isCall(node)) {
      blocker = i;
      break;
    }
    if (ops[i].return === Infinity) unknownCount++;
    else known.push(i);
  }
  const when = blocker >= 0 ? ` (one must be, as ${show(blocker)} returned at ${ops[blocker].return})` : '';
  lines.push(`None of these could be placed next${when}:`);
  for (const i of known.slice(0, SHOWN)) {
    const fits = model.step(fail.state, ops[i].input, ops[i].output).ok;
    const why = fits ? 'fits this state, but nothing linearizable follows' : 'contradicts this state';
    lines.push(`  - ${show(i)}: ${why}`);
  }
  if (known.length > SHOWN) lines.push(`  ... and ${known.length - SHOWN} more`);
  if (unknownCount > 0) {
    lines.push(`  (unknown-outcome operations pending here: ${unknownCount}; placing them does not help)`);
  }
  return lines.join('\n');
}
