import { Prng } from '../support/prng.js';
import fc from 'fast-check';
import { checkLinearizability, type CheckResult } from './linearizability.js';
import { kvModel, type KvInput, type KvOperation, type KvOutput, type KvState } from './kv-model.js';

const U: KvOutput = { unknown: true };
const INF = Infinity;

function op(clientId: number, input: KvInput, call: number, ret: number, output: KvOutput): KvOperation {
  return { clientId, input, call, output, return: ret };
}
const get = (key: string): KvInput => ({ op: 'get', key });
const put = (key: string, value: string): KvInput => ({ op: 'put', key, value });
const del = (key: string): KvInput => ({ op: 'delete', key });
const cas = (key: string, expectedVersion: number, value: string): KvInput => ({
  op: 'cas',
  key,
  expectedVersion,
  value,
});
const okV = (version: number): KvOutput => ({ ok: true, version });
const read = (value: string | null, version: number): KvOutput => ({ ok: true, value, version });
const failed = (version: number): KvOutput => ({ ok: false, version });

const check = (history: KvOperation[]): CheckResult => checkLinearizability(kvModel, history);

function expectLinearizable(history: KvOperation[]): void {
  const result = check(history);
  expect(result.explanation).toBeUndefined();
  expect(result).toMatchObject({ ok: true, timedOut: false });
}

function expectViolation(history: KvOperation[], key = 'x'): CheckResult {
  const result = check(history);
  expect(result).toMatchObject({ ok: false, timedOut: false, key });
  expect(result.explanation).toContain(`key ${JSON.stringify(key)}`);
  return result;
}

describe('kvModel.step', () => {
  const s = (value: string | null, version: number): KvState => ({ value, version });
  const step = (state: KvState, input: KvInput, output: KvOutput) => kvModel.step(state, input, output);

  it('counts versions per key and restarts them after a delete', () => {
    expect(step(s(null, 0), put('x', 'a'), okV(1))).toEqual({ ok: true, state: s('a', 1) });
    expect(step(s('a', 1), put('x', 'b'), okV(2))).toEqual({ ok: true, state: s('b', 2) });
    expect(step(s('b', 2), del('x'), okV(0))).toEqual({ ok: true, state: s(null, 0) });
    expect(step(s(null, 0), del('x'), okV(0)).ok).toBe(true);
    expect(step(s('a', 1), put('x', 'b'), okV(1)).ok).toBe(false);
  });

  it('checks get results, and does not take a missing value for absent', () => {
    expect(step(s('a', 1), get('x'), read('a', 1)).ok).toBe(true);
    expect(step(s(null, 0), get('x'), read(null, 0)).ok).toBe(true);
    expect(step(s('a', 1), get('x'), read('a', 2)).ok).toBe(false);
    expect(step(s(null, 0), get('x'), okV(0)).ok).toBe(false);
  });

  it('applies cas only on the expected version', () => {
    expect(step(s(null, 0), cas('x', 0, 'a'), okV(1))).toEqual({ ok: true, state: s('a', 1) });
    expect(step(s('a', 1), cas('x', 0, 'b'), failed(1))).toEqual({ ok: true, state: s('a', 1) });
    expect(step(s('a', 1), cas('x', 0, 'b'), okV(1)).ok).toBe(false);
    expect(step(s('a', 1), cas('x', 1, 'b'), failed(1)).ok).toBe(false);
    expect(step(s('a', 1), put('x', 'b'), failed(1)).ok).toBe(false);
  });

  it('accepts any unknown outcome, taking effect as a success would', () => {
    expect(step(s('a', 1), put('x', 'b'), U)).toEqual({ ok: true, state: s('b', 2) });
    expect(step(s('a', 1), cas('x', 1, 'b'), U)).toEqual({ ok: true, state: s('b', 2) });
    expect(step(s('a', 1), cas('x', 3, 'b'), U)).toEqual({ ok: true, state: s('a', 1) });
    expect(step(s('a', 1), del('x'), U)).toEqual({ ok: true, state: s(null, 0) });
  });

  it('hashes null apart from string values', () => {
    expect(kvModel.hash(s(null, 0))).not.toBe(kvModel.hash(s('', 0)));
    expect(kvModel.hash(s(null, 0))).not.toBe(kvModel.hash(s('-', 0)));
  });
});

describe('checkLinearizability: linearizable histories', () => {
  it('accepts the empty history', () => {
    expectLinearizable([]);
  });

  it('accepts a sequential history with puts, gets, cas and deletes', () => {
    expectLinearizable([
      op(1, get('x'), 0, 1, read(null, 0)),
      op(1, put('x', 'a'), 2, 3, okV(1)),
      op(2, get('x'), 4, 5, read('a', 1)),
      op(2, cas('x', 1, 'b'), 6, 7, okV(2)),
      op(1, cas('x', 1, 'c'), 8, 9, failed(2)),
      op(1, del('x'), 10, 11, okV(0)),
      op(2, get('x'), 12, 13, read(null, 0)),
      op(2, cas('x', 0, 'd'), 14, 15, okV(1)),
      op(1, put('x', 'e'), 16, 17, okV(2)),
      op(1, get('x'), 18, 19, read('e', 2)),
    ]);
  });

  it('accepts overlapping puts and gets when some order explains them', () => {
    // Order: put b, get b, put a, get a, although put a was called first.
    expectLinearizable([
      op(1, put('x', 'a'), 0, 10, okV(2)),
      op(2, put('x', 'b'), 1, 5, okV(1)),
      op(3, get('x'), 2, 3, read('b', 1)),
      op(3, get('x'), 6, 12, read('a', 2)),
      op(4, get('x'), 0, 20, read(null, 0)),
    ]);
  });

  it('treats equal return and call times as concurrent', () => {
    expectLinearizable([op(1, put('x', 'a'), 0, 5, okV(1)), op(2, get('x'), 5, 6, read(null, 0))]);
    expectViolation([op(1, put('x', 'a'), 0, 5, okV(1)), op(2, get('x'), 6, 7, read(null, 0))]);
  });

  it('accepts concurrent cas where exactly one wins', () => {
    expectLinearizable([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(2, cas('x', 1, 'b'), 2, 10, failed(2)),
      op(3, cas('x', 1, 'c'), 3, 8, okV(2)),
      op(4, get('x'), 11, 12, read('c', 2)),
    ]);
  });

  it('accepts an unknown-outcome write that took effect, even long after it was called', () => {
    expectLinearizable([
      op(1, put('x', 'a'), 0, INF, U),
      op(2, get('x'), 5, 6, read(null, 0)),
      op(2, get('x'), 10, 11, read('a', 1)),
      op(3, put('x', 'b'), 12, 13, okV(2)),
    ]);
  });

  it('accepts unknown-outcome writes that never took effect', () => {
    expectLinearizable([
      op(1, put('x', 'a'), 0, INF, U),
      op(2, del('x'), 1, INF, U),
      op(3, cas('x', 0, 'c'), 2, INF, U),
      op(4, put('x', 'b'), 5, 6, okV(1)),
      op(4, get('x'), 7, 8, read('b', 1)),
    ]);
  });

  it('accepts an unknown cas on the wrong version as a no-op', () => {
    expectLinearizable([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(2, cas('x', 5, 'z'), 2, INF, U),
      op(3, get('x'), 3, 4, read('a', 1)),
    ]);
  });

  it('ignores unknown-outcome gets, and an unknown outcome recorded with a finite return time', () => {
    expectLinearizable([
      op(1, get('x'), 0, 1, U),
      // The client gave up at 2, but the put took effect later: the recorded return time must not constrain it.
      op(2, put('x', 'a'), 0, 2, U),
      op(3, get('x'), 3, 4, read(null, 0)),
      op(3, get('x'), 5, 6, read('a', 1)),
    ]);
  });

  it('accepts many interchangeable unknown writes, a few of which took effect', () => {
    const history: KvOperation[] = [];
    for (let i = 0; i < 40; i++) history.push(op(10 + i, put('x', `lost${i}`), i, INF, U));
    for (let i = 0; i < 10; i++) history.push(op(60 + i, del('x'), i, INF, U));
    // Versions reveal that 3 of them took effect before the put, then a delete.
    history.push(op(1, put('x', 'a'), 100, 101, okV(4)));
    history.push(op(1, get('x'), 102, 103, read('a', 4)));
    history.push(op(1, get('x'), 104, 105, read(null, 0)));
    const result = check(history);
    expect(result).toMatchObject({ ok: true, timedOut: false });
    expect(result.steps).toBeLessThan(10_000);
  });

  it('does not let a configuration that used other unknown ops stand in for one that used fewer', () => {
    // The search first tries put p then delete (state absent, both used) and fails; delete alone reaches the same
    // state with put p still available, which is the way through: put x, delete, put p, get.
    const history = [
      op(1, put('x', 'x'), 0, 1, okV(1)),
      op(2, put('x', 'p'), 2, INF, U),
      op(3, del('x'), 3, INF, U),
      op(4, get('x'), 10, 11, read('p', 1)),
    ];
    expectLinearizable(history);
    const bare = { ...kvModel, partition: undefined, partitionKey: undefined, hints: undefined };
    expect(checkLinearizability(bare, history)).toMatchObject({ ok: true });
  });

  it('checks keys independently', () => {
    expectLinearizable([
      op(1, put('x', 'a'), 0, 10, okV(1)),
      op(2, put('y', 'a'), 0, 10, okV(1)),
      op(3, get('y'), 1, 2, read('a', 1)),
      op(3, get('x'), 3, 4, read(null, 0)),
    ]);
  });
});

describe('checkLinearizability: violations', () => {
  it('rejects a stale read after a completed write', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(1, put('x', 'b'), 2, 3, okV(2)),
      op(2, get('x'), 4, 5, read('a', 1)),
    ]);
  });

  it('rejects a read of a value never written', () => {
    expectViolation([op(1, put('x', 'a'), 0, 10, okV(1)), op(2, get('x'), 1, 11, read('zzz', 1))]);
  });

  it('rejects two reads in real-time order that see concurrent writes in opposite order', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, 20, okV(1)),
      op(2, put('x', 'b'), 0, 20, okV(2)),
      op(3, get('x'), 10, 11, read('b', 2)),
      op(4, get('x'), 12, 13, read('a', 1)),
    ]);
    // Same with unknown-outcome writes, so that only the reads pin the order.
    expectViolation([
      op(1, put('x', 'a'), 0, INF, U),
      op(2, put('x', 'b'), 0, INF, U),
      op(3, get('x'), 10, 11, read('a', 1)),
      op(3, get('x'), 12, 13, read('b', 2)),
      op(4, get('x'), 14, 15, read('a', 1)),
    ]);
  });

  it('rejects a new-old inversion: a later read misses a write an earlier read saw', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, 20, okV(1)),
      op(2, get('x'), 2, 3, read('a', 1)),
      op(3, get('x'), 4, 5, read(null, 0)),
    ]);
  });

  it('rejects a cas that succeeded on the wrong version', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(1, put('x', 'b'), 2, 3, okV(2)),
      op(2, cas('x', 1, 'c'), 4, 5, okV(2)),
    ]);
    expectViolation([op(1, put('x', 'a'), 0, 1, okV(1)), op(2, cas('x', 0, 'c'), 4, 5, okV(1))]);
  });

  it('rejects a cas that failed although the version matched', () => {
    expectViolation([op(1, put('x', 'a'), 0, 1, okV(1)), op(2, cas('x', 1, 'c'), 2, 3, failed(1))]);
  });

  it('rejects a lost acknowledged write', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(2, put('x', 'b'), 2, 3, okV(1)),
      op(3, get('x'), 4, 5, read('b', 1)),
    ]);
    expectViolation([op(1, put('x', 'a'), 0, 1, okV(1)), op(2, get('x'), 2, 3, read(null, 0))]);
  });

  it('rejects reading an unknown-outcome write twice across a later write', () => {
    expectViolation([
      op(1, put('x', 'a'), 0, INF, U),
      op(2, get('x'), 1, 2, read('a', 1)),
      op(2, put('x', 'b'), 3, 4, okV(2)),
      op(2, get('x'), 5, 6, read('a', 3)),
    ]);
  });

  it('names the failing key and explains with the longest prefix and the unplaceable operations', () => {
    const result = expectViolation(
      [
        op(1, put('x', 'a'), 0, 1, okV(1)),
        op(1, put('y', 'a'), 0, 1, okV(1)),
        op(2, put('y', 'b'), 2, 3, okV(2)),
        op(3, get('y'), 4, 5, read('a', 1)),
        op(3, get('x'), 6, 7, read('a', 1)),
      ],
      'y',
    );
    const text = result.explanation ?? '';
    expect(text).toContain('Longest linearizable prefix found: 2 of 3 operations with a known outcome');
    expect(text).toContain('put("y", "b") → ok v2');
    expect(text).toContain('"b" (v2)');
    expect(text).toMatch(/get\("y"\) → "a" v1 .*contradicts this state/);
  });

  it('does not pad the explained prefix with unknown-outcome operations', () => {
    const result = expectViolation([
      op(1, put('x', 'a'), 0, 1, okV(1)),
      op(2, put('x', 'b'), 2, 3, okV(2)),
      op(5, put('x', 'z'), 2, INF, U),
      op(3, get('x'), 4, 5, read('a', 1)),
      op(4, cas('x', 2, 'c'), 4, 9, okV(3)),
    ]);
    const text = result.explanation ?? '';
    expect(text).toContain('3 of 4 operations with a known outcome\n(3 in all');
    expect(text).not.toContain('put("x", "z")');
    expect(text).toContain('State after it: "c" (v3)');
    expect(text).toContain('unknown-outcome operations pending here: 1');
    expect(text).toMatch(/get\("x"\) → "a" v1 .*contradicts this state/);
  });
});

describe('checkLinearizability: options and determinism', () => {
  const history = concurrentHistory(7, 5, 40, 0.05);

  it('stops at the step budget without a verdict, deterministically', () => {
    const a = checkLinearizability(kvModel, history, { budget: 10 });
    const b = checkLinearizability(kvModel, history, { budget: 10 });
    expect(a).toMatchObject({ ok: false, timedOut: true, steps: 10, key: 'k' });
    expect(b).toEqual(a);
  });

  it('gives the same verdict and step count on every run', () => {
    const a = checkLinearizability(kvModel, history);
    expect(a.ok).toBe(true);
    expect(checkLinearizability(kvModel, history, { timeoutMs: 60_000 })).toEqual(a);
  });

  it('rejects malformed times', () => {
    expect(() => check([op(1, get('x'), 5, 4, read(null, 0))])).toThrow(RangeError);
    expect(() => check([op(1, get('x'), NaN, 4, read(null, 0))])).toThrow(RangeError);
    expect(() => check([op(1, get('x'), INF, INF, read(null, 0))])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Generated histories

interface Plan {
  readonly kind: 'get' | 'put' | 'delete' | 'cas';
  readonly key: number;
  readonly value: number;
  readonly casRight: boolean;
  readonly before: number;
  readonly after: number;
  readonly client: number;
  /** known outcome, or unknown outcome that was applied / lost */
  readonly fate: 'known' | 'applied' | 'lost';
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  kind: fc.constantFrom<Plan['kind']>('get', 'get', 'put', 'put', 'delete', 'cas', 'cas'),
  key: fc.integer({ min: 0, max: 2 }),
  value: fc.integer({ min: 0, max: 3 }),
  casRight: fc.boolean(),
  before: fc.integer({ min: 0, max: 30 }),
  after: fc.integer({ min: 0, max: 30 }),
  client: fc.integer({ min: 0, max: 4 }),
  fate: fc.constantFrom<Plan['fate']>('known', 'known', 'known', 'known', 'known', 'applied', 'lost'),
});

/**
 * Runs the plans against a correct KV in sequence, op i taking effect at time 10(i+1), then widens each op into an
 * interval around that point (or an infinite one for unknown outcomes). Small value and key ranges make repeated
 * values and equal times common; `uniqueValues` instead gives every write its own value, as a simulator would.
 */
function sequentialHistory(plans: readonly Plan[], uniqueValues = false): KvOperation[] {
  const store = new Map<string, KvState>();
  return plans.map((p, i) => {
    const key = `k${p.key}`;
    const point = 10 * (i + 1);
    const cur = store.get(key) ?? kvModel.init();
    const value = uniqueValues ? `u${i}` : `v${p.value}`;
    let input: KvInput;
    if (p.kind === 'get') input = get(key);
    else if (p.kind === 'put') input = put(key, value);
    else if (p.kind === 'delete') input = del(key);
    else input = cas(key, p.casRight ? cur.version : cur.version + 1 + p.value, value);
    const applied = p.fate !== 'lost';
    const result = kvModel.step(cur, input, U).state;
    if (applied) store.set(key, result);
    let output: KvOutput = U;
    if (p.fate === 'known') {
      if (input.op === 'get') output = read(cur.value, cur.version);
      else if (input.op === 'cas' && !p.casRight) output = failed(cur.version);
      else output = okV(result.version);
    }
    return op(p.client, input, point - p.before, p.fate === 'known' ? point + p.after : INF, output);
  });
}

/** Reference checker: tries every order of every subset, straight from the definition. Tiny histories only. */
function bruteForce(history: readonly KvOperation[]): boolean {
  const done = history.map(() => false);
  const knownTotal = history.filter((o) => o.return !== INF).length;
  const go = (state: ReadonlyMap<string, KvState>, known: number): boolean => {
    if (known === knownTotal) return true; // unknown-outcome ops left over never took effect
    for (let i = 0; i < history.length; i++) {
      const o = history[i];
      if (done[i] || history.some((p, j) => !done[j] && j !== i && p.return < o.call)) continue;
      const r = kvModel.step(state.get(o.input.key) ?? kvModel.init(), o.input, o.output);
      if (!r.ok) continue;
      done[i] = true;
      const found = go(new Map(state).set(o.input.key, r.state), known + (o.return === INF ? 0 : 1));
      done[i] = false;
      if (found) return true;
    }
    return false;
  };
  return go(new Map(), 0);
}

/** The simulator's seeded PRNG, so the large generated histories are the same on every run. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}

/**
 * `clients` clients each issue `perClient` ops back to back on one key; each op takes effect at a point inside its
 * interval, so at most `clients` known-outcome ops overlap. A fraction `unknownRate` time out: the client moves on,
 * and the op was applied or lost at random.
 */
function concurrentHistory(seed: number, clients: number, perClient: number, unknownRate: number): KvOperation[] {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const planned: { client: number; call: number; point: number; ret: number; unknown: boolean }[] = [];
  for (let c = 0; c < clients; c++) {
    let t = 0;
    for (let k = 0; k < perClient; k++) {
      const call = t + int(3);
      const point = call + int(20);
      const ret = point + int(20);
      const unknown = rnd() < unknownRate;
      planned.push({ client: c, call, point, ret, unknown });
      t = unknown ? call + 25 : ret;
    }
  }
  planned.sort((a, b) => a.point - b.point || a.client - b.client);
  let state = kvModel.init();
  let writes = 0;
  return planned.map((p) => {
    const roll = rnd();
    let input: KvInput;
    if (roll < 0.4) input = get('k');
    else if (roll < 0.7) input = put('k', `w${writes++}`);
    else if (roll < 0.8) input = del('k');
    else input = cas('k', rnd() < 0.5 ? state.version : state.version + 1, `w${writes++}`);
    const before = state;
    if (!p.unknown || rnd() < 0.5) state = kvModel.step(state, input, U).state;
    let output: KvOutput = U;
    if (!p.unknown) {
      if (input.op === 'get') output = read(before.value, before.version);
      else if (input.op === 'cas' && before.version !== input.expectedVersion) output = failed(before.version);
      else output = okV(state.version);
    }
    return op(p.client, input, p.call, p.unknown ? INF : p.ret, output);
  });
}

describe('checkLinearizability: properties', () => {
  it('accepts every widened sequential execution of a correct KV', () => {
    fc.assert(
      fc.property(fc.array(planArb, { maxLength: 60 }), fc.boolean(), (plans, unique) => {
        const result = check(sequentialHistory(plans, unique));
        return result.ok && !result.timedOut;
      }),
      { numRuns: 300 },
    );
  });

  it('rejects it once one read returns a value never written', () => {
    fc.assert(
      fc.property(fc.array(planArb, { minLength: 1, maxLength: 60 }), fc.nat(), fc.boolean(), (plans, pick, unique) => {
        const history = sequentialHistory(plans, unique);
        const reads = history.flatMap((o, i) => (o.input.op === 'get' && o.return !== INF ? [i] : []));
        fc.pre(reads.length > 0);
        const i = reads[pick % reads.length];
        const o = history[i];
        const version = 'version' in o.output ? o.output.version : 0;
        history[i] = { ...o, output: read('never-written', version) };
        const result = check(history);
        return !result.ok && !result.timedOut && result.key === o.input.key;
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with a brute-force search on small perturbed histories', () => {
    const perturbation = fc.record({
      index: fc.nat(),
      what: fc.constantFrom('version+', 'version-', 'swap-value', 'shift-call', 'none'),
      amount: fc.integer({ min: 1, max: 25 }),
    });
    fc.assert(
      fc.property(
        fc.array(planArb, { minLength: 1, maxLength: 7 }),
        fc.array(perturbation, { maxLength: 2 }),
        fc.boolean(),
        (plans, perturbations, uniqueValues) => {
          const history = sequentialHistory(plans, uniqueValues);
          for (const { index, what, amount } of perturbations) {
            const i = index % history.length;
            const o = history[i];
            const out = o.output;
            if (what === 'shift-call') {
              history[i] = { ...o, call: o.call + Math.min(amount, o.return - o.call) };
            } else if (!('unknown' in out)) {
              if (what === 'version+') history[i] = { ...o, output: { ...out, version: out.version + 1 } };
              if (what === 'version-') history[i] = { ...o, output: { ...out, version: out.version - 1 } };
              if (what === 'swap-value' && out.ok && o.input.op === 'get') {
                history[i] = { ...o, output: { ...out, value: out.value === null ? 'v0' : null } };
              }
            }
          }
          expect(check(history).ok).toBe(bruteForce(history));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('gives the same verdict without the search hints', () => {
    const plain = { ...kvModel, hints: undefined };
    fc.assert(
      fc.property(
        fc.array(planArb, { maxLength: 14 }),
        fc.nat(),
        fc.boolean(),
        fc.boolean(),
        (plans, pick, mutate, unique) => {
          const history = sequentialHistory(plans, unique);
          if (mutate && history.length > 0) {
            const i = pick % history.length;
            const o = history[i];
            if (!('unknown' in o.output)) history[i] = { ...o, output: { ...o.output, version: o.output.version + 1 } };
          }
          expect(check(history).ok).toBe(checkLinearizability(plain, history).ok);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('checkLinearizability: performance guard', () => {
  it('checks 2,000 ops on one key with 5 concurrent clients quickly', () => {
    const history = concurrentHistory(42, 5, 400, 0.01);
    expect(history).toHaveLength(2000);
    const started = Date.now();
    const result = check(history);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ ok: true, timedOut: false });
  });

  it('rejects a 2,000-op history with one corrupted read quickly', () => {
    const history = concurrentHistory(42, 5, 400, 0);
    const i = history.findIndex((o, k) => k > 1500 && o.input.op === 'get');
    history[i] = { ...history[i], output: read('never-written', 1) };
    const started = Date.now();
    const result = check(history);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ ok: false, timedOut: false, key: 'k' });
  });

  it('copes with many timed-out writes', () => {
    const history = concurrentHistory(9, 5, 400, 0.1);
    const started = Date.now();
    const result = check(history);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ ok: true, timedOut: false });
  });

  // A failing search must rule out every placement of every timed-out write, so it is the expensive case.
  it('rejects a 500-op history with timed-out writes and one corrupted read', () => {
    const history = concurrentHistory(3, 5, 100, 0.02);
    const i = history.findIndex((o, k) => k > 375 && o.input.op === 'get' && o.return !== INF);
    history[i] = { ...history[i], output: read('never-written', 1) };
    const result = checkLinearizability(kvModel, history, { budget: 5_000_000 });
    expect(result).toMatchObject({ ok: false, timedOut: false, key: 'k' });
  });
});
