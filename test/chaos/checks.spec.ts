/**
 * The chaos checks on hand-made histories: each must pass a correct one and catch the fault it is there for.
 */
import { FencedResource } from './fencing-resource.js';
import type { Belief, Grant } from './history.js';
import { checkKv } from './kv-check.js';
import { checkLocks } from './lock-check.js';
import type { KvOperation } from '../sim/kv-model.js';

const grant = (holder: string, token: number, call: number, ret: number, acquiredAt = ret - 1): Grant => ({
  holder,
  node: 'n1',
  name: 'L',
  token,
  call,
  return: ret,
  acquiredAt,
});
const belief = (g: Grant, at: number, held = true): Belief => ({ holder: g.holder, name: g.name, token: g.token, held, at });
const locks = (
  grants: Grant[],
  resource: FencedResource['log'] = [],
  beliefs: Belief[] = [],
  released: [string, number][] = [],
): ReturnType<typeof checkLocks> => checkLocks({ grants, resource, beliefs, releasedAt: new Map(released) });

/** A holder's section as the lock client runs it: read the counter, write it + 1. */
function section(r: FencedResource, g: Grant): boolean {
  const v = r.read(g.name, g.token, g.holder);
  return v !== null && r.write(g.name, g.token, g.holder, v + 1);
}

describe('FencedResource', () => {
  it('refuses reads and writes with a token below the highest seen, accepts equal and higher ones', () => {
    const r = new FencedResource();
    expect(r.read('L', 5, 'a')).toBe(0);
    expect(r.write('L', 5, 'a', 1)).toBe(true);
    expect(r.read('L', 7, 'b')).toBe(1);
    expect(r.write('L', 5, 'a', 2)).toBe(false);
    expect(r.read('L', 5, 'a')).toBeNull();
    expect(r.write('L', 7, 'b', 2)).toBe(true);
    expect(r.read('other', 1, 'c')).toBe(0);
    expect(r.rejections).toBe(2);
    expect(r.log.map((x) => x.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe('checkLocks', () => {
  it('passes holders one after another, a stale holder refused by the resource included', () => {
    const r = new FencedResource();
    const a = grant('a', 10, 0, 5, 4);
    const b = grant('b', 20, 3, 1200, 1190);
    const c = grant('c', 30, 1300, 1310, 1305);
    expect(section(r, a)).toBe(true);
    const stale = r.read('L', a.token, 'a'); // a reads again, stalls past its lease …
    expect(section(r, b)).toBe(true);
    expect(r.write('L', a.token, 'a', stale! + 1)).toBe(false); // … and is fenced off
    expect(section(r, c)).toBe(true);
    const beliefs = [belief(a, 6), belief(a, 900), belief(b, 1195), belief(b, 1250), belief(b, 1300, false), belief(c, 1306)];
    // a's lease ran out (it never released); b released before c acquired.
    const result = locks([a, b, c], r.log, beliefs, [['b', 1301]]);
    expect(result.violations).toEqual([]);
    expect(result.minBeliefGapMs).toBeCloseTo(55);
    expect(result.minExpiryGapMs).toBeCloseTo(290);
  });

  it('catches one token granted to two holders, and their interleaved sections in the resource', () => {
    const r = new FencedResource();
    const a = grant('a', 10, 0, 5);
    const b = grant('b', 10, 1, 6);
    const va = r.read('L', 10, 'a')!;
    const vb = r.read('L', 10, 'b')!;
    r.write('L', 10, 'a', va + 1);
    r.write('L', 10, 'b', vb + 1);
    const v = locks([a, b], r.log).violations.join('\n');
    expect(v).toMatch(/token 10 granted twice/);
    expect(v).toMatch(/critical section resumed after another holder's/);
    expect(v).toMatch(/wrote 1 over 1: an update was lost/);
  });

  it('catches a grant that goes back in real time', () => {
    const v = locks([grant('a', 10, 0, 5), grant('b', 8, 6, 9)]).violations;
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/got token 8, not above token 10/);
    // Concurrent acquires may be granted in either order.
    expect(locks([grant('a', 10, 0, 5), grant('b', 8, 4, 9)]).violations).toEqual([]);
  });

  it('catches a resource request with a token nobody was granted', () => {
    const r = new FencedResource();
    r.read('L', 99, 'x');
    expect(locks([grant('a', 10, 0, 5)], r.log).violations[0]).toMatch(/token 99 was granted to nobody/);
  });

  it('catches two holders believing at once, beyond the tolerance only', () => {
    const a = grant('a', 10, 0, 5, 4);
    const b = grant('b', 20, 10, 1060, 1050);
    const late = locks([a, b], [], [belief(a, 1100)]);
    expect(late.violations[0]).toMatch(/a \(token 10\) still believed it held the lock at 1100.0, 50.0 ms after b \(token 20\)/);
    expect(late.minBeliefGapMs).toBeCloseTo(-50);
    expect(locks([a, b], [], [belief(a, 1053)]).violations).toEqual([]);
    // A "not held" answer is not a belief.
    expect(locks([a, b], [], [belief(a, 1100, false)]).violations).toEqual([]);
  });
});

describe('checkKv', () => {
  const op = (clientId: number, input: KvOperation['input'], output: KvOperation['output'], call: number, ret: number): KvOperation => ({
    clientId,
    input,
    output,
    call,
    return: ret,
  });

  it('passes a history where an unknown write explains a later read', () => {
    const r = checkKv([
      op(0, { op: 'put', key: 'k', value: 'a' }, { ok: true, version: 1 }, 0, 1),
      op(1, { op: 'put', key: 'k', value: 'b' }, { unknown: true }, 2, 3),
      op(0, { op: 'get', key: 'k' }, { ok: true, value: 'b', version: 2 }, 10, 11),
    ]);
    expect(r).toMatchObject({ keys: 1, operations: 3, unknown: 1, timedOut: false });
    expect(r.violation).toBeUndefined();
  });

  it('catches a stale read after an acknowledged write', () => {
    const r = checkKv([
      op(0, { op: 'put', key: 'k', value: 'a' }, { ok: true, version: 1 }, 0, 1),
      op(0, { op: 'put', key: 'k', value: 'b' }, { ok: true, version: 2 }, 2, 3),
      op(1, { op: 'get', key: 'k' }, { ok: true, value: 'a', version: 1 }, 4, 5),
    ]);
    expect(r.violation).toMatch(/key "k" is not linearizable/);
  });
});
