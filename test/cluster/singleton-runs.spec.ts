/**
 * TaskLedger.runOnce, the fence around every @SingletonTask body: it runs only on the node that recorded the start as
 * leader of that term, once per fire time, with the run's signal and fencing token. Regression: a start proposed by a
 * leader that had just lost leadership was forwarded to the new leader, recorded, and the ex-leader ran the body too.
 */
import { NotLeaderException } from '../../lib/cluster/errors.js';
import type { Proposer } from '../../lib/cluster/cluster-store.js';
import { TaskLedgerModule, type TaskCommand } from '../../lib/cluster/state/task-ledger-module.js';
import { TaskLedger, type TaskRunContext } from '../../lib/cluster/task-ledger.js';
import { LogTaskRecords } from '../../lib/cluster/embedded/log-task-records.js';
import { startMemCluster } from './mem-cluster.js';

jest.setTimeout(30_000);

/** A ledger over a local module; `leader` says whether this node leads with a lease, `term` which term. */
function ledger() {
  const module = new TaskLedgerModule();
  let index = 0;
  const state = { term: 3, entryTerm: 3, tenure: new AbortController() as AbortController | null, onStart: () => {} };
  const proposer: Proposer = {
    async propose(_module, command, options) {
      const cmd = command as TaskCommand;
      if (cmd.op === 'start' && !options?.localOnly) throw new Error('a start must be proposed locally');
      if (cmd.op === 'start') state.onStart();
      return module.apply(cmd, { index: ++index, term: state.entryTerm, time: 1000 + index });
    },
  };
  const tasks = new TaskLedger(new LogTaskRecords(proposer, module), 'n1', { term: () => state.term, leaderSignal: () => state.tenure?.signal ?? null });
  return { module, tasks, state };
}

test('the body gets its run: signal, token (the start entry index), term and fire time; the end is recorded', async () => {
  const { tasks, module } = ledger();
  const seen: TaskRunContext[] = [];
  const r = await tasks.runOnce('t', 5000, (run) => void seen.push(run));
  expect(r.ran).toBe(true);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toMatchObject({ task: 't', fireTime: 5000, token: 1, term: 3 });
  expect(seen[0]!.signal.aborted).toBe(false);
  expect(module.latest('t')).toMatchObject({ outcome: 'ok', token: 1, node: 'n1' });
});

test('once per fire time: a second fire of the same time does not run', async () => {
  const { tasks } = ledger();
  let runs = 0;
  await tasks.runOnce('t', 5000, () => void runs++);
  expect(await tasks.runOnce('t', 5000, () => void runs++)).toEqual({ ran: false, reason: 'duplicate' });
  expect(runs).toBe(1);
});

test('without a lease nothing is proposed and nothing runs', async () => {
  const { tasks, state, module } = ledger();
  state.tenure = null;
  expect(await tasks.runOnce('t', 1, () => undefined)).toEqual({ ran: false, reason: 'not-leader' });
  expect(module.runs()).toEqual([]);
});

test('a start that landed in another term than this node led starts nothing and the body does not run', async () => {
  const { tasks, state } = ledger();
  state.entryTerm = 4; // appended by the leader of term 4, not by us (term 3)
  let runs = 0;
  expect(await tasks.runOnce('t', 1, () => void runs++)).toEqual({ ran: false, reason: 'not-leader' });
  expect(runs).toBe(0);
});

test('a lease that ends while the start is being recorded: the body does not run, the run is left to be abandoned', async () => {
  const { tasks, state, module } = ledger();
  state.onStart = () => state.tenure!.abort();
  let runs = 0;
  expect(await tasks.runOnce('t', 1, () => void runs++)).toEqual({ ran: false, reason: 'lease-lost' });
  expect(runs).toBe(0);
  module.termBegins(4);
  expect(module.latest('t')!.outcome).toBe('abandoned');
});

test('the run signal aborts with the tenure, and with the caller’s own signal', async () => {
  const { tasks, state } = ledger();
  const stop = new AbortController();
  /** Runs a body that waits for its signal; resolves with that signal once the body is running. */
  const runUntilAborted = (fireTime: number) => {
    let running!: (s: AbortSignal) => void;
    const started = new Promise<AbortSignal>((r) => (running = r));
    const done = tasks.runOnce(fireTime === 1 ? 't' : 'u', fireTime, (run) => new Promise<void>((resolve) => {
      running(run.signal);
      run.signal.addEventListener('abort', () => resolve());
    }), { signal: stop.signal });
    return { started, done };
  };
  const first = runUntilAborted(1);
  const s1 = await first.started;
  state.tenure!.abort(); // leadership or the lease ended
  await expect(first.done).resolves.toMatchObject({ ran: true });
  expect(s1.aborted).toBe(true);

  state.tenure = new AbortController();
  const second = runUntilAborted(2);
  const s2 = await second.started;
  stop.abort(); // the application shuts down
  await expect(second.done).resolves.toMatchObject({ ran: true });
  expect(s2.aborted).toBe(true);
});

test('a failing body is recorded as an error and its error returned', async () => {
  const { tasks, module } = ledger();
  const boom = new Error('boom');
  const r = await tasks.runOnce('t', 1, () => {
    throw boom;
  });
  expect(r).toMatchObject({ ran: true, error: boom });
  expect(module.latest('t')).toMatchObject({ outcome: 'error', error: 'boom' });
});

test('in a cluster: only the leader runs a fire; a run its crashed leader left open is abandoned by the next leader', async () => {
  const c = await startMemCluster();
  try {
    const leader = await c.leader();
    const follower = c.ids.find((id) => id !== leader)!;
    expect(await c.node(follower).cluster.tasks.runOnce('job', 1, () => undefined)).toEqual({ ran: false, reason: 'not-leader' });
    await expect(c.node(follower).cluster.tasks.start('job', 1)).rejects.toBeInstanceOf(NotLeaderException);

    let release!: () => void;
    const started = new Promise<void>((r) => {
      void c.node(leader).cluster.tasks.runOnce('job', 2, () => {
        r();
        return new Promise<void>((done) => (release = done));
      });
    });
    await started;
    await c.crash(leader); // mid-run
    const next = await c.leader(c.ids.filter((id) => id !== leader));
    await c.node(next).store.put('after', 1); // an entry of the new term, applied everywhere it leads
    expect(c.node(next).cluster.tasks.latest('job')).toMatchObject({ fireTime: 2, node: leader, outcome: 'abandoned' });
    release();
  } finally {
    await c.stop();
  }
});
