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
    expect(m.latest('t')).toEqual({ task: 't', fireTime: 1000, node: 'a', term: 3, start: 1005, outcome: 'running' });
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
