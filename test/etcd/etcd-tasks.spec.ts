/** The singleton task ledger on a real etcd: starts fenced by the election key, trims, abandons, the watched copy. */
import type { Etcd3 } from 'etcd3';
import { EtcdTasks } from '../../lib/cluster/etcd/etcd-tasks';
import type { EtcdKeys } from '../../lib/cluster/etcd/keys';
import { NoLeaderException, NotLeaderException, ProposalOutcomeUnknownError } from '../../lib/cluster/errors';
import { silentLogger, type ClusterLogger } from '../../lib/cluster/logger';
import { TaskLedger } from '../../lib/cluster/task-ledger';
import { TASK_RUNS_KEPT, type TaskRun } from '../../lib/cluster/state/task-ledger-module';
import { etcdHosts, freshKeys, noRetryClient, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { waitUntil } from '../support/process-cluster';

jest.setTimeout(120_000);

let etcd: EtcdCluster;
let c: Etcd3;
const opened: EtcdTasks[] = [];

beforeAll(async () => {
  etcd = await startEtcd(3);
  c = client();
}, 120_000);

afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  c?.close();
  await etcd?.destroy();
});

function client(): Etcd3 {
  return noRetryClient(etcdHosts(etcd));
}

/** An election key as a leader holds it: under electionPrefix, on a lease; its create revision is the term. */
async function campaign(keys: EtcdKeys, id: string): Promise<{ key: string; term: number; revoke: () => Promise<void> }> {
  const lease = c.lease(30, { autoKeepAlive: false });
  const leaseId = await lease.grant();
  const key = keys.electionKey(leaseId);
  await lease.put(key).value(JSON.stringify({ id }));
  const kv = (await c.get(key).exec()).kvs[0]!;
  return { key, term: Number(kv.create_revision), revoke: () => lease.revoke() };
}

async function ledger(keys: EtcdKeys, own: () => string | null, logger: ClusterLogger = silentLogger): Promise<EtcdTasks> {
  const t = new EtcdTasks({ client: c, keys, requestTimeoutMs: 5_000, logger, wallClock: Date.now, ownKey: own });
  opened.push(t);
  await t.open();
  return t;
}


test('start records a run whose token is its key\'s create revision; a second start of that fire time is a duplicate', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  const res = await t.start('report', 1000, 'n1', lead.term);
  expect(res.started).toBe(true);
  const run = res.run!;
  const kv = (await c.get(keys.taskRun('report', 1000)).exec()).kvs[0]!;
  expect(run).toEqual({ task: 'report', fireTime: 1000, node: 'n1', term: lead.term, token: Number(kv.create_revision), start: run.start, outcome: 'running' });
  expect(run.token).toBeGreaterThan(lead.term);
  expect(t.latest('report')).toEqual(run);
  expect(t.runs('report')).toEqual([run]);

  const again = await t.start('report', 1000, 'n2', lead.term);
  expect(again).toEqual({ started: false, reason: 'duplicate', run });
  const next = await t.start('report', 2000, 'n1', lead.term);
  expect(next.run!.token).toBeGreaterThan(run.token);
  expect(t.runs().map((r) => r.fireTime)).toEqual([2000, 1000]);
});

test('a start in a tenure that is over is not-leader and writes nothing; without an election key it throws', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  let own: string | null = lead.key;
  const t = await ledger(keys, () => own);
  expect(await t.start('report', 1000, 'n1', lead.term + 1)).toEqual({ started: false, reason: 'not-leader', run: null });
  expect(await c.get(keys.taskRun('report', 1000)).exec()).toMatchObject({ kvs: [] });
  // The lease ends: the key goes, and the tenure's start with it.
  await lead.revoke();
  expect(await t.start('report', 1000, 'n1', lead.term)).toEqual({ started: false, reason: 'not-leader', run: null });
  expect(await c.getAll().prefix(keys.tasksPrefix).count()).toBe(0);
  own = null;
  await expect(t.start('report', 1000, 'n1', lead.term)).rejects.toBeInstanceOf(NotLeaderException);
  expect(t.runs()).toEqual([]);
});

test('a start without an election key names the leader when one is known, never this node', async () => {
  const keys = freshKeys();
  let leader = 'n2';
  const t = new EtcdTasks({ client: c, keys, requestTimeoutMs: 5_000, logger: silentLogger, wallClock: Date.now, ownKey: () => null, leaderId: () => leader });
  await expect(t.start('report', 1, 'n1', 1)).rejects.toMatchObject({ name: 'NotLeaderException', leaderId: 'n2' });
  leader = 'n1';
  await expect(t.start('report', 1, 'n1', 1)).rejects.toMatchObject({ name: 'NotLeaderException', leaderId: '' });
});

/** What a failed etcd call may surface as: the library's two outcomes, never etcd3's or grpc's own error types. */
async function expectClusterError(call: Promise<unknown>, only?: typeof NoLeaderException): Promise<void> {
  const e = await call.then(
    () => new Error('the call succeeded'),
    (err: unknown) => err,
  );
  if (only) expect(e).toBeInstanceOf(only);
  else if (!(e instanceof NoLeaderException) && !(e instanceof ProposalOutcomeUnknownError)) throw new Error(`expected NoLeaderException or ProposalOutcomeUnknownError, got ${String(e)}`);
}

test('with its client closed every write fails with NoLeaderException (it never reached etcd)', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const closed = client();
  closed.close();
  const t = new EtcdTasks({ client: closed, keys, requestTimeoutMs: 2_000, logger: silentLogger, wallClock: Date.now, ownKey: () => lead.key });
  await expectClusterError(t.start('job', 1, 'n1', lead.term), NoLeaderException);
  await expectClusterError(t.skip('job', 2, 'n1'), NoLeaderException);
  await expectClusterError(t.finish('job', 1, 'ok'), NoLeaderException);
  await expectClusterError(t.abandonBefore(lead.term), NoLeaderException);
  await expect(t.waitForRevision(1, 1_000)).rejects.toBeInstanceOf(NoLeaderException);
  expect(await c.getAll().prefix(keys.tasksPrefix).count()).toBe(0);
});

test('with no etcd member reachable every write fails with NoLeaderException or ProposalOutcomeUnknownError', async () => {
  const keys = freshKeys();
  // Nothing listens on port 1: every connection attempt is refused.
  const unreachable = noRetryClient(['http://127.0.0.1:1']);
  try {
    const t = new EtcdTasks({ client: unreachable, keys, requestTimeoutMs: 1_000, logger: silentLogger, wallClock: Date.now, ownKey: () => keys.electionKey('1') });
    await expectClusterError(t.start('job', 1, 'n1', 1));
    await expectClusterError(t.skip('job', 2, 'n1'));
    await expectClusterError(t.finish('job', 1, 'ok'));
    await expectClusterError(t.abandonBefore(1));
    await expectClusterError(t.waitForRevision(1, 1_000));
  } finally {
    unreachable.close();
  }
});

test('finish records the outcome once, only for the run its token names', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  const run = (await t.start('job', 10, 'n1', lead.term)).run!;
  await t.finish('job', 10, 'error', 'boom', run.token + 1);
  expect(t.latest('job')).toEqual(run);
  await t.finish('job', 10, 'ok', undefined, run.token);
  const done = t.latest('job')!;
  expect(done).toEqual({ ...run, outcome: 'ok', end: done.end });
  expect(done.end).toBeGreaterThanOrEqual(run.start);
  // Ended already: a second report changes nothing.
  await t.finish('job', 10, 'error', 'late');
  expect(t.latest('job')).toEqual(done);
  // Unknown fire time: nothing.
  await t.finish('job', 11, 'ok');
  expect(t.runs('job')).toHaveLength(1);
});

test('skip records a skipped run (with the leader\'s term) unless the fire time is recorded already', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  await t.skip('job', 5, 'n2');
  const skipped = t.latest('job')!;
  expect(skipped).toEqual({ task: 'job', fireTime: 5, node: 'n2', term: lead.term, token: skipped.token, start: skipped.start, end: skipped.start, outcome: 'skipped' });
  expect(await t.start('job', 5, 'n1', lead.term)).toEqual({ started: false, reason: 'duplicate', run: skipped });
  const run = (await t.start('job', 6, 'n1', lead.term)).run!;
  await t.skip('job', 6, 'n2');
  expect(t.latest('job')).toEqual(run);
});

test(`${TASK_RUNS_KEPT + 5} starts keep the newest ${TASK_RUNS_KEPT}; a start of a trimmed fire time is evicted`, async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  const tokens: number[] = [];
  for (let i = 1; i <= TASK_RUNS_KEPT + 5; i++) {
    const res = await t.start('often', i * 1000, 'n1', lead.term);
    expect(res.started).toBe(true);
    tokens.push(res.run!.token);
  }
  for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
  const kept = t.runs('often');
  expect(kept.map((r) => r.fireTime)).toEqual(Array.from({ length: TASK_RUNS_KEPT }, (_, i) => (TASK_RUNS_KEPT + 5 - i) * 1000));
  expect(await c.getAll().prefix(keys.taskPrefix('often')).count()).toBe(TASK_RUNS_KEPT + 1); // the runs and ~evicted
  expect(await t.start('often', 3000, 'n1', lead.term)).toEqual({ started: false, reason: 'evicted', run: null });
  expect(await t.start('often', 5000, 'n1', lead.term)).toEqual({ started: false, reason: 'evicted', run: null });
  // Leadership checks come first, as in the embedded ledger.
  expect(await t.start('often', 5000, 'n1', lead.term + 1)).toEqual({ started: false, reason: 'not-leader', run: null });
  // A copy opened now reads the same.
  const other = await ledger(keys, () => null);
  expect(other.runs('often')).toEqual(kept);
});

test('abandonBefore marks runs of earlier tenures abandoned; a late finish still records how they ended', async () => {
  const keys = freshKeys();
  const old = await campaign(keys, 'n1');
  const t1 = await ledger(keys, () => old.key);
  const hanging = (await t1.start('a', 1, 'n1', old.term)).run!;
  const other = (await t1.start('b', 1, 'n1', old.term)).run!;
  const done = (await t1.start('a', 2, 'n1', old.term)).run!;
  await t1.finish('a', 2, 'ok', undefined, done.token);
  await old.revoke();

  const next = await campaign(keys, 'n2');
  const t2 = await ledger(keys, () => next.key);
  const fresh = (await t2.start('c', 1, 'n2', next.term)).run!;
  await t2.abandonBefore(next.term);
  expect(t2.latest('b')).toEqual({ ...other, outcome: 'abandoned' });
  expect(t2.runs('a').map((r) => [r.fireTime, r.outcome])).toEqual([
    [2, 'ok'],
    [1, 'abandoned'],
  ]);
  expect(t2.latest('c')).toEqual(fresh);
  // The old leader's report arrives late: it still lands, with the same token.
  await t1.finish('a', 1, 'error', 'cut off', hanging.token);
  await waitUntil('the late finish in the other copy', 10_000, async () => (t2.runs('a')[1]!.outcome === 'error' ? true : undefined));
  expect(t2.runs('a')[1]).toEqual({ ...hanging, outcome: 'error', error: 'cut off', end: t2.runs('a')[1]!.end });
  await t2.abandonBefore(next.term);
  expect(t2.runs('a')[1]!.outcome).toBe('error');
});

test(`abandonBefore after more than ${TASK_RUNS_KEPT} runs of a task (so with its ~evicted marker) warns of nothing`, async () => {
  const keys = freshKeys();
  const warnings: string[] = [];
  const logger: ClusterLogger = { ...silentLogger, warn: (m) => void warnings.push(m) };
  const old = await campaign(keys, 'n1');
  const t1 = await ledger(keys, () => old.key, logger);
  for (let i = 1; i <= TASK_RUNS_KEPT + 2; i++) expect((await t1.start('often', i, 'n1', old.term)).started).toBe(true);
  expect((await c.get(`${keys.taskPrefix('often')}~evicted`).exec()).kvs).toHaveLength(1);
  await old.revoke();

  const next = await campaign(keys, 'n2');
  const t2 = await ledger(keys, () => next.key, logger);
  await t2.abandonBefore(next.term);
  expect(t2.runs('often')).toHaveLength(TASK_RUNS_KEPT);
  expect(t2.runs('often').every((r) => r.outcome === 'abandoned')).toBe(true);
  expect(warnings).toEqual([]);
});

test('a second copy follows every change, and waitForRevision tells when it holds a given revision', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  const mirror = await ledger(keys, () => null);
  for (let i = 1; i <= TASK_RUNS_KEPT + 3; i++) await t.start('x', i, 'n1', lead.term);
  await t.skip('y', 1, 'n1');
  await t.finish('x', TASK_RUNS_KEPT + 3, 'ok');
  const y = (await t.start('y', 2, 'n1', lead.term)).run!;
  await t.finish('y', 2, 'error', 'no', y.token);
  const head = Number((await c.get(keys.taskRun('y', 2)).exec()).header.revision);
  await mirror.waitForRevision(head, 10_000);
  expect(mirror.revision).toBeGreaterThanOrEqual(head);
  expect(mirror.runs()).toEqual(t.runs());
  expect(mirror.runs('x')).toHaveLength(TASK_RUNS_KEPT);

  // A revision made elsewhere (nothing under the ledger changed): confirmed with one read, not by waiting for the watch.
  await c.put(`${keys.prefix}elsewhere`).value('1');
  const elsewhere = Number((await c.get(`${keys.prefix}elsewhere`).exec()).header.revision);
  const before = Date.now();
  await mirror.waitForRevision(elsewhere, 10_000);
  expect(mirror.revision).toBeGreaterThanOrEqual(elsewhere);
  expect(Date.now() - before).toBeLessThan(5_000);
  // A revision etcd has not reached: refused after the timeout.
  await expect(mirror.waitForRevision(elsewhere + 1_000_000, 300)).rejects.toThrow(/not \d+, within 300 ms/);
});

test('TaskLedger.runOnce on the etcd ledger: runs once, records the outcome, and a second fire of the slot does not run', async () => {
  const keys = freshKeys();
  const lead = await campaign(keys, 'n1');
  const t = await ledger(keys, () => lead.key);
  const tenure = new AbortController();
  const tasks = new TaskLedger(t, 'n1', { term: () => lead.term, leaderSignal: () => tenure.signal });
  let ran = 0;
  const first = await tasks.runOnce('nightly', 42, (r) => {
    ran++;
    expect(r.term).toBe(lead.term);
  });
  expect(first).toMatchObject({ ran: true, run: { task: 'nightly', fireTime: 42, outcome: 'running' } });
  const run = (first as { run: TaskRun }).run;
  await waitUntil('the outcome recorded', 10_000, async () => (t.latest('nightly')?.outcome === 'ok' ? true : undefined));
  expect(await tasks.runOnce('nightly', 42, () => void ran++)).toEqual({ ran: false, reason: 'duplicate' });
  expect(ran).toBe(1);
  expect(t.latest('nightly')!.token).toBe(run.token);
});
