import { TASK_RUNS_KEPT, TaskLedgerModule, type TaskCommand } from '../../lib/cluster/state/task-ledger-module';

function log(m: TaskLedgerModule) {
  let index = 0;
  return (cmd: TaskCommand, time: number, term = 1) => m.apply(cmd, { index: ++index, term, time });
}

describe('TaskLedgerModule', () => {
  test('start, then end, records the run with entry times and the term', () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    expect(apply({ op: 'start', task: 't', fireTime: 1000, node: 'a' }, 1005, 3)).toMatchObject({ started: true });
    expect(m.latest('t')).toEqual({ task: 't', fireTime: 1000, node: 'a', term: 3, token: 1, start: 1005, outcome: 'running' });
    expect(apply({ op: 'end', task: 't', fireTime: 1000, outcome: 'error', error: 'boom' }, 1010)).toEqual({ ok: true });
    expect(m.latest('t')).toMatchObject({ end: 1010, outcome: 'error', error: 'boom' });
    expect(apply({ op: 'end', task: 't', fireTime: 1000, outcome: 'ok' }, 1011)).toEqual({ ok: false }); // ended once
  });

  test('a second start for the same fire time does not start (a new leader whose clock is behind)', () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    apply({ op: 'start', task: 't', fireTime: 5000, node: 'a' }, 5001);
    const again = apply({ op: 'start', task: 't', fireTime: 5000, node: 'b' }, 4990, 2);
    expect(again).toMatchObject({ started: false, run: { node: 'a' } });
    expect(m.runs('t')).toHaveLength(1);
  });

  test(`keeps the last ${TASK_RUNS_KEPT} runs per task, newest first, and still refuses evicted fire times`, () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    for (let i = 1; i <= TASK_RUNS_KEPT + 10; i++) apply({ op: 'start', task: 't', fireTime: i * 1000, node: 'a' }, i * 1000);
    apply({ op: 'start', task: 'u', fireTime: 1, node: 'a' }, 1);
    const runs = m.runs('t');
    expect(runs).toHaveLength(TASK_RUNS_KEPT);
    expect(runs[0]!.fireTime).toBe((TASK_RUNS_KEPT + 10) * 1000);
    expect(apply({ op: 'start', task: 't', fireTime: 5000, node: 'b' }, 99_999)).toMatchObject({ started: false });
    expect(m.runs()).toHaveLength(TASK_RUNS_KEPT + 1);
  });

  test('a start counts only in the term its proposer led: one that travelled to a later leader starts nothing', () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    expect(apply({ op: 'start', task: 't', fireTime: 1, node: 'a', term: 3 }, 1, 4)).toEqual({ started: false, reason: 'not-leader', run: null });
    expect(m.runs('t')).toEqual([]);
    expect(apply({ op: 'start', task: 't', fireTime: 1, node: 'b', term: 4 }, 1, 4)).toMatchObject({ started: true, run: { node: 'b' } });
  });

  test('the token of a run is the index of its start entry, increasing from run to run', () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    apply({ op: 'start', task: 'x', fireTime: 1, node: 'a' }, 1);
    apply({ op: 'start', task: 'y', fireTime: 1, node: 'a' }, 1);
    apply({ op: 'start', task: 'x', fireTime: 2, node: 'a' }, 2);
    expect(m.runs().map((r) => [r.task, r.fireTime, r.token])).toEqual([
      ['x', 2, 3],
      ['x', 1, 1],
      ['y', 1, 2],
    ]);
  });

  test('runs left running when a newer term begins are abandoned; a late end from the same run still lands', () => {
    const m = new TaskLedgerModule();
    const apply = log(m);
    apply({ op: 'start', task: 't', fireTime: 1, node: 'a' }, 1, 2);
    apply({ op: 'start', task: 't', fireTime: 2, node: 'a' }, 2, 2);
    apply({ op: 'end', task: 't', fireTime: 1, outcome: 'ok' }, 3, 2);
    m.termBegins(2);
    expect(m.latest('t')!.outcome).toBe('running'); // the same term: its leader still leads
    m.termBegins(3);
    expect(m.runs('t').map((r) => r.outcome)).toEqual(['abandoned', 'ok']);
    const token = m.latest('t')!.token;
    expect(apply({ op: 'end', task: 't', fireTime: 2, token: token + 1, outcome: 'ok' }, 4, 3)).toEqual({ ok: false });
    expect(apply({ op: 'end', task: 't', fireTime: 2, token, outcome: 'error', error: 'cut short' }, 4, 3)).toEqual({ ok: true });
    expect(m.latest('t')).toMatchObject({ outcome: 'error', error: 'cut short', end: 4 });
  });

  test('runs handed out are frozen: a reader cannot change the replica', () => {
    const m = new TaskLedgerModule();
    log(m)({ op: 'start', task: 't', fireTime: 1, node: 'a' }, 1);
    expect(() => ((m.latest('t') as { outcome: string }).outcome = 'ok')).toThrow(TypeError);
    const b = new TaskLedgerModule();
    b.restore(m.snapshot());
    expect(Object.isFrozen(b.latest('t'))).toBe(true);
  });

  test('snapshot and restore round trip', () => {
    const a = new TaskLedgerModule();
    const apply = log(a);
    apply({ op: 'start', task: 'y', fireTime: 2, node: 'a' }, 2);
    apply({ op: 'start', task: 'x', fireTime: 1, node: 'b', outcome: 'skipped' }, 1);
    const b = new TaskLedgerModule();
    b.restore(a.snapshot());
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(b.runs()).toEqual(a.runs());
    expect(b.latest('x')).toMatchObject({ outcome: 'skipped', end: 1 });
  });
});
