/**
 * The chaos checks on hand-made histories: each must pass a correct one and catch the fault it is there for.
 */
import { checkCommands } from './command-check.js';
import { parseEffectLog, type EffectLine } from './effect-log.js';
import { checkEvents } from './event-check.js';
import { FencedResource } from './fencing-resource.js';
import { checkFires } from './fire-check.js';
import type { Belief, CommandRecord, Grant, PublishRecord } from './history.js';
import { checkKv } from './kv-check.js';
import { checkLeaderWork } from './leader-work-check.js';
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

describe('parseEffectLog', () => {
  it('reads lines onto the given clock, leaves out a last line still being written, reports others', () => {
    const text = '{"type":"boot","node":"n1","pid":7,"at":1000}\n{"type":"event","index":3,"n":9,"node":"n1","at":1002}\nnot json\n{"type":"step","node":"n1"';
    const r = parseEffectLog(text, (t) => t - 1000);
    expect(r.lines).toEqual([
      { type: 'boot', node: 'n1', pid: 7, at: 0 },
      { type: 'event', index: 3, n: 9, node: 'n1', at: 2 },
    ]);
    expect(r.unreadable).toEqual(['not json']);
  });
});

describe('checkCommands', () => {
  const sent = (id: string, outcome: CommandRecord['outcome'], ranOn?: string): CommandRecord => ({
    id,
    node: 'n2',
    outcome,
    ...(outcome === 'ok' ? { ranOn } : { error: outcome === 'notRun' ? 'NoLeaderException' : 'ForwardOutcomeUnknownException' }),
    call: 0,
    return: 10,
  });
  const ran = (id: string, node = 'n1', at = 5): EffectLine => ({ type: 'command', id, node, at });

  it('passes: acknowledged once, surely-not-run never, unknown at most once', () => {
    const r = checkCommands([sent('a', 'ok', 'n1'), sent('b', 'notRun'), sent('c', 'unknown'), sent('d', 'unknown')], [ran('a'), ran('c')]);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ sent: 4, ok: 1, notRun: 1, unknown: 2, ran: 2, unknownRan: 1 });
  });

  it('catches an acknowledged command that ran twice, and an unknown one that ran twice', () => {
    const v = checkCommands([sent('a', 'ok', 'n1'), sent('c', 'unknown')], [ran('a'), ran('a', 'n3', 7), ran('c'), ran('c')]).violations;
    expect(v).toHaveLength(2);
    expect(v[0]).toMatch(/command a ran 2 times \(sent to n2 at 0.0, acknowledged as run on n1 at 10.0\): on n1 at 5.0, on n3 at 7.0/);
    expect(v[1]).toMatch(/command c ran 2 times/);
  });

  it('catches a NoLeaderException (surely not run) that ran', () => {
    expect(checkCommands([sent('b', 'notRun')], [ran('b')]).violations).toEqual([
      'command b (sent to n2 at 0.0, failed with NoLeaderException: surely not run at 10.0) ran: on n1 at 5.0',
    ]);
  });

  it('catches an acknowledged command that never ran, or ran elsewhere, and one nobody sent', () => {
    const v = checkCommands([sent('a', 'ok', 'n1'), sent('e', 'ok', 'n1')], [ran('e', 'n3'), ran('z')]).violations.join('\n');
    expect(v).toMatch(/command a .* never ran/);
    expect(v).toMatch(/command e .* ran on n3 instead/);
    expect(v).toMatch(/command z ran but no client sent it/);
  });
});

describe('checkFires', () => {
  const step = (fireTime: number, token: number, node: string, n: number, of: number, at: number): EffectLine => ({
    type: 'step',
    fireTime,
    token,
    term: node === 'n1' ? 1 : 2,
    step: n,
    of,
    node,
    at,
  });

  it('passes runs handed over between nodes; runs on one node may overlap', () => {
    const lines = [
      step(100, 10, 'n1', 1, 2, 100),
      step(200, 12, 'n1', 1, 3, 200), // overlaps the previous run on the same node
      step(100, 10, 'n1', 2, 2, 210),
      step(200, 12, 'n1', 2, 3, 230), // stopped before step 3 (lost its lease)
      step(300, 20, 'n2', 1, 1, 240),
    ];
    const r = checkFires(lines, 5);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ fires: 3, runs: 3, steps: 5, stoppedEarly: 1 });
    expect(r.minHandOverGapMs).toBeCloseTo(10);
  });

  it('catches two runs (tokens) of one fire time', () => {
    const v = checkFires([step(100, 10, 'n1', 1, 1, 100), step(100, 20, 'n2', 1, 1, 400)], 5).violations;
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/^fire time 100 ran 2 times: step 1\/1 of fire time 100 with token 10 .* on n1 at 100.0; step 1\/1 of fire time 100 with token 20 .* on n2 at 400.0/);
  });

  it("catches an older run's step after a newer run on another node began, beyond the tolerance only", () => {
    const older = (at: number) => [step(100, 10, 'n1', 1, 2, 100), step(100, 10, 'n1', 2, 2, at)];
    const newer = step(200, 20, 'n2', 1, 1, 250);
    const v = checkFires([...older(280), newer], 5).violations;
    expect(v).toEqual([
      'step 2/2 of fire time 100 with token 10 (term 1) on n1 at 280.0 came 30.0 ms after the newer run\'s first step, step 1/1 of fire time 200 with token 20 (term 2) on n2 at 250.0',
    ]);
    expect(checkFires([...older(254), newer], 5).violations).toEqual([]);
  });

  it('catches one token in two runs', () => {
    expect(checkFires([step(100, 10, 'n1', 1, 2, 100), step(200, 10, 'n2', 1, 1, 300)], 5).violations[0]).toMatch(/token 10 belongs to two runs/);
  });
});

describe('checkEvents', () => {
  const boot = (node: string, pid: number, at = 0): EffectLine => ({ type: 'boot', node, pid, at });
  const ev = (node: string, index: number, n = index * 10, at = index): EffectLine => ({ type: 'event', index, n, node, at });
  const missed = (node: string, after: number, upTo: number): EffectLine => ({ type: 'missed', after, upTo, node, at: 0 });
  const stop = (node: string, type: 'stop' | 'closed', position: number, at: number): EffectLine => ({ type, position, node, at });
  const published = (n: number, index: number): PublishRecord => ({ n, node: 'n1', outcome: 'ok', index, call: 0, return: 1 });
  const all = ['n1', 'n2'];

  it('passes in-order deliveries, a restart that delivers again, and a gap covered by a notice', () => {
    const logs = {
      n1: [boot('n1', 1), ev('n1', 2), ev('n1', 5), ev('n1', 7), ev('n1', 9)],
      n2: [boot('n2', 2), ev('n2', 2), ev('n2', 5), boot('n2', 3), ev('n2', 2), ev('n2', 5), ev('n2', 7), boot('n2', 4), missed('n2', 7, 8), ev('n2', 9)],
    };
    // Index 8 is covered by the notice: no event was there, which is fine too.
    const r = checkEvents(logs, [published(90, 9)], all);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ indexes: 4, deliveries: 10, redelivered: 2, gapsNoticed: 1, deliveredByNode: { n1: 4, n2: 4 } });
  });

  it('catches a node that skipped an event within one incarnation', () => {
    const logs = { n1: [boot('n1', 1), ev('n1', 2), ev('n1', 5), ev('n1', 7)], n2: [boot('n2', 2), ev('n2', 2), ev('n2', 7), ev('n2', 5)] };
    const v = checkEvents(logs, [], all).violations;
    expect(v).toEqual([
      'n2 (incarnation 1, pid 2) delivered index 7 (event 70) at 7.0 right after 2: it skipped the events at 5, with no ClusterEventsMissed covering them',
      'n2 (incarnation 1, pid 2) delivered index 5 (event 50) at 5.0 after 7: not in increasing order',
    ]);
  });

  it('catches a gap without a notice across a restart, saying how the node had stopped', () => {
    const logs = {
      n1: [boot('n1', 1), ev('n1', 2), ev('n1', 5), ev('n1', 7)],
      n2: [boot('n2', 2), ev('n2', 2), stop('n2', 'stop', 2, 40), stop('n2', 'closed', 5, 60), boot('n2', 3), ev('n2', 7)],
    };
    const v = checkEvents(logs, [], all).violations;
    expect(v).toEqual([
      'n2 (incarnation 2, pid 3) delivered index 7 (event 70) at 7.0 as its first after a restart, the highest it had delivered being 2: it skipped the events at 5, ' +
        'with no ClusterEventsMissed covering them (its previous incarnation logged its last event at index 2; it counted 2 delivered when its app began closing at 40.0, and 5 when it had closed at 60.0)',
      'n2 never delivered 1 of the 3 events, at indexes 5, and was told of no gap covering them',
    ]);
  });

  it('catches a node that never caught up, or an acknowledged event nobody delivered', () => {
    const logs = { n1: [boot('n1', 1), ev('n1', 2), ev('n1', 5)], n2: [boot('n2', 2), ev('n2', 2)] };
    expect(checkEvents(logs, [], all).violations).toEqual(['n2 never delivered 1 of the 2 events, at indexes 5, and was told of no gap covering them']);
    // Not required of a node that was not running at the end.
    expect(checkEvents(logs, [], ['n1']).violations).toEqual([]);
    expect(checkEvents(logs, [published(80, 8)], ['n1']).violations).toEqual(['n1 never delivered 1 of the 3 events, at indexes 8, and was told of no gap covering them']);
  });

  it('catches an index carrying two events, and an event committed at two indexes', () => {
    const logs = { n1: [boot('n1', 1), ev('n1', 2, 20), ev('n1', 3, 30)], n2: [boot('n2', 2), ev('n2', 2, 21), ev('n2', 4, 30)] };
    const v = checkEvents(logs, [published(20, 2)], []).violations;
    expect(v).toEqual([
      'index 2 carries event 20 (its publish through n1 returned at 1.0) but event 21 on n2 (delivered at 2.0)',
      'event 30 was committed twice: at index 3 on n1 (delivered at 3.0) and at 4 on n2 (delivered at 4.0)',
      expect.stringMatching(/^n2 .* delivered index 4 .* it skipped the events at 3,/),
    ]);
  });
});

describe('checkLeaderWork', () => {
  it('joins the three checks and reports unreadable log lines', () => {
    const r = checkLeaderWork(
      {
        commands: [{ id: 'a', node: 'n1', outcome: 'notRun', error: 'NoLeaderException', call: 0, return: 1 }],
        publishes: [],
        logs: { n1: [{ type: 'command', id: 'a', node: 'n1', at: 0.5 }] },
        unreadable: { n1: ['{"half'] },
        atEnd: ['n1'],
      },
      5,
    );
    expect(r.violations).toEqual([`n1's effect log has an unreadable line: {"half`, expect.stringMatching(/^command a .* ran: on n1 at 0.5$/)]);
    expect(r.fires.toleranceMs).toBe(5);
  });
});
