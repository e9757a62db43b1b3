/**
 * Every proposal settles within requestTimeout, also when its leader steps down or is cut off while it waits, and a
 * waiter is never overwritten or orphaned (regressions: a put on a cut-off leader stayed pending for the whole
 * partition; a waiter of an earlier term at a reused log index never settled, not even on stop()).
 */
import { ProposalOutcomeUnknownError } from '../../lib/cluster/errors.js';
import { encodePayload } from '../../lib/cluster/state/entry-codec.js';
import { sleep, startMemCluster, track } from './mem-cluster.js';

jest.setTimeout(30_000);
const REQUEST_TIMEOUT = 500;
/** Timer slack on a machine busy with other suites. */
const SLACK = 150;

let c: Awaited<ReturnType<typeof startMemCluster>>;
afterEach(async () => {
  await c?.stop();
});

test('a put on a leader cut off right after the propose fails within the request timeout, its outcome unknown', async () => {
  c = await startMemCluster({ requestTimeoutMs: REQUEST_TIMEOUT });
  const leader = await c.leader();
  await c.node(leader).store.put('warm-up', 1);
  const t0 = Date.now();
  const put = track(c.node(leader).store.put('k', 'v'));
  c.net.isolate(leader, c.ids); // same turn as the propose: its App reaches nobody
  await c.until('the put settles', () => put.state !== 'pending', REQUEST_TIMEOUT + SLACK);
  expect(Date.now() - t0).toBeLessThanOrEqual(REQUEST_TIMEOUT + SLACK);
  expect(put.error).toBeInstanceOf(ProposalOutcomeUnknownError);
});

test('a put forwarded by a follower whose leader is then cut off fails within the request timeout', async () => {
  c = await startMemCluster({ requestTimeoutMs: REQUEST_TIMEOUT });
  const leader = await c.leader();
  const follower = c.ids.find((i) => i !== leader)!;
  await c.node(follower).store.put('warm-up', 1);
  const t0 = Date.now();
  const put = track(c.node(follower).store.put('k', 'v'));
  c.net.cutOneWay(leader, follower); // the request arrives; neither the answer nor any later message comes back
  c.net.cutOneWay(leader, c.ids.find((i) => i !== leader && i !== follower)!);
  await c.until('the put settles', () => put.state !== 'pending', REQUEST_TIMEOUT + SLACK);
  expect(Date.now() - t0).toBeLessThanOrEqual(REQUEST_TIMEOUT + SLACK);
  // Failed, or applied once through the leader the other two elected meanwhile (the session makes the retry safe):
  // either way within the timeout, never pending for the partition's length.
  if (put.state === 'resolved') expect(await c.node(follower).store.get('k', { consistency: 'linearizable' })).toMatchObject({ value: 'v' });
  else expect(put.state).toBe('rejected');
});

test('a waiter of an earlier term at a log index a later proposal reuses is settled, and stop() settles every one', async () => {
  c = await startMemCluster({ requestTimeoutMs: 60_000 });
  const a = await c.leader();
  const others = c.ids.filter((i) => i !== a);
  await c.node(a).store.put('warm-up', 1);
  const A = c.node(a).runtime;
  const raw = (key: string) => A.propose(encodePayload({ module: 'kv', command: { op: 'put', key, value: key }, time: Date.now() }), 60_000);
  c.net.isolate(a, c.ids);
  const base = A.status().lastIndex;
  const stranded = [raw('p1'), raw('p2'), raw('p3')].map(track); // base+1..base+3, never replicated
  await c.leader(others);
  await c.until(`${a} steps down`, () => !A.leadership.isLeader);
  await sleep(20);
  // Stepping down settles them at once (the write may still commit elsewhere: unknown), not at their deadline.
  expect(stranded.map((p) => p.state)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(stranded.every((p) => p.error instanceof ProposalOutcomeUnknownError)).toBe(true);

  c.net.heal();
  await c.until(`${a} has the new leader's log`, () => A.status().lastIndex <= base + 1 && A.applied >= base + 1);
  const leaderNow = c.ids.find((i) => c.node(i).runtime.leadership.isLeader)!;
  c.node(leaderNow).runtime.transferLeadership(a);
  await c.until(`${a} leads again`, () => A.hasValidLease());
  const fresh = track(raw('fresh'));
  const pending = track(raw('pending-at-stop'));
  await c.until('the fresh write applies', () => fresh.state !== 'pending');
  expect(fresh.state).toBe('resolved');
  c.net.isolate(a, c.ids);
  const late = track(raw('late'));
  await A.stop({ transfer: false });
  await sleep(10);
  expect(late.state).toBe('rejected');
  expect([pending.state, late.state]).not.toContain('pending');
});

test('a proposal that waited past its deadline before reaching the log is refused as not run', async () => {
  c = await startMemCluster({ requestTimeoutMs: REQUEST_TIMEOUT });
  const leader = await c.leader();
  const L = c.node(leader).runtime;
  const p = track(L.propose(encodePayload({ module: 'kv', command: { op: 'put', key: 'k', value: 1 }, time: Date.now() }), 1));
  // Block the event loop past the deadline before the Ready loop picks the proposal up.
  const until = performance.now() + 5;
  while (performance.now() < until) {
    // busy
  }
  await c.until('settled', () => p.state !== 'pending');
  expect(p.error?.name).toBe('NotLeaderException');
  expect(p.error?.message).toMatch(/deadline before it reached the log; it was not applied/);
});
