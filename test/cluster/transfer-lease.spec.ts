/**
 * A transfer whose TimeoutNow is lost, or whose target is down, gives the leader its lease back once the transfer is
 * abandoned (regression: the leader kept leading its term with no lease, so @LeaderOnly failed on it and no
 * @SingletonTask ran anywhere). Leader work stops the moment a transfer starts, not a tick later.
 */
import { MessageType } from '../../lib/raft/index.js';
import { ELECTION_TICK, TICK_MS, startMemCluster } from './mem-cluster.js';

jest.setTimeout(30_000);
const ELECTION_MS = ELECTION_TICK * TICK_MS;

let c: Awaited<ReturnType<typeof startMemCluster>>;
afterEach(async () => {
  await c?.stop();
});

test('towards a follower that is down: the leader keeps leading and has its lease back after one election timeout', async () => {
  c = await startMemCluster();
  const leader = await c.leader();
  const [target, other] = c.ids.filter((id) => id !== leader);
  await c.node(leader).store.put('warm-up', 1);
  await c.crash(target!);
  const L = c.node(leader).runtime;
  const term = L.leadership.term;
  expect(L.transferLeadership(target)).toBe(target);
  expect(L.hasValidLease()).toBe(false);
  const t0 = Date.now();
  await c.until('the lease is back', () => L.hasValidLease(), 4 * ELECTION_MS);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(ELECTION_MS - TICK_MS);
  expect(L.leadership).toMatchObject({ isLeader: true, term });
  expect(c.node(other!).runtime.hasValidLease()).toBe(false);
  await expect(c.node(leader).store.put('after', 2)).resolves.toMatchObject({ version: 1 });
});

test('TimeoutNow lost on the wire: the lease comes back, and the target, which heard of the fence, never campaigns', async () => {
  c = await startMemCluster();
  const leader = await c.leader();
  const target = c.ids.find((id) => id !== leader)!;
  let lost = 0;
  c.net.dropIf = (m) => m.type === MessageType.TimeoutNow && ++lost > 0;
  const L = c.node(leader).runtime;
  const term = L.leadership.term;
  L.transferLeadership(target);
  await c.until('the lease is back', () => L.hasValidLease(), 4 * ELECTION_MS);
  expect(lost).toBe(1);
  expect(c.node(target).runtime.raft.core.transferFence).toBe(L.raft.core.transferFence);
  expect(L.leadership).toMatchObject({ isLeader: true, term });
});

test('leader work stops the moment a transfer starts: the tenure signal aborts inside transferLeadership()', async () => {
  c = await startMemCluster();
  const leader = await c.leader();
  const node = c.node(leader);
  const signal = await c.until('a leader signal', () => node.cluster.leaderSignal() ?? undefined);
  node.runtime.transferLeadership();
  expect(signal.aborted).toBe(true);
  expect(node.cluster.leaderSignal()).toBeNull();
});
