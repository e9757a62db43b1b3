/**
 * Faults under the etcd backend, with real processes: three app nodes (test/e2e/node-main.ts, CATGA_ETCD_HOSTS set)
 * on a real 3-member etcd, all on loopback. Needs `npm run build` first.
 *
 * - etcd's own leader is killed mid-run: the app cluster never has two nodes holding a leader lease at once, and no
 *   acknowledged write is lost.
 * - the leading app node is paused (SIGSTOP) past its session lease: its lease ends before another node's begins, its
 *   lock is no longer held when it resumes, and a write fenced with its old token is refused.
 */
import { randomUUID } from 'node:crypto';
import type { WriteResult } from '../../lib/cluster/cluster-store.js';
import { etcdHosts, startEtcd, type EtcdCluster } from '../support/etcd-cluster.js';
import { claims, LeasePoller, overlaps } from '../support/lease-claims.js';
import type { LockAcquireResult, LockHeldResult, ReadKeysResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, sleep, waitUntil, type NodeProcess } from '../support/process-cluster.js';
import { freePorts } from '../transport/helpers.js';

jest.setTimeout(120_000);

let etcd: EtcdCluster;
let cluster: ProcessCluster;
let poller: LeasePoller | null = null;

beforeAll(async () => {
  assertBuilt();
  etcd = await startEtcd(3);
  cluster = new ProcessCluster({
    ports: await freePorts(3),
    env: { CATGA_ETCD_HOSTS: etcdHosts(etcd).join(','), CATGA_ETCD_PREFIX: `faults/${randomUUID()}/` },
  });
  await cluster.start();
  await cluster.leader(15_000);
});

afterAll(async () => {
  await poller?.stop();
  await cluster?.destroy();
  await etcd?.destroy();
});

test("etcd's leader killed mid-run: at most one app leader at a time, and every acknowledged write is still there", async () => {
  const lease = (poller = new LeasePoller(cluster.nodes));
  lease.start(10);
  const acked: string[] = [];
  let failed = 0;
  const writes = (async () => {
    const until = Date.now() + 8000;
    for (let i = 0; Date.now() < until; i++) {
      const key = `w-${i}`;
      const node = cluster.nodes[i % cluster.nodes.length]!;
      await node.request<WriteResult>({ op: 'put', key, value: i }, 15_000).then(
        () => acked.push(key),
        () => failed++,
      );
    }
  })();
  await sleep(2000);
  const etcdLeader = await etcd.settled();
  const ackedBeforeKill = acked.length;
  await etcdLeader.stop('SIGKILL');
  await sleep(3000);
  await etcd.restart(etcdLeader);
  await writes;
  await poller.stop();
  poller = null;

  console.log(`etcd leader kill: ${acked.length} writes acknowledged (${ackedBeforeKill} before the kill), ${failed} failed`);
  expect(ackedBeforeKill).toBeGreaterThan(100);
  // Writes went on after etcd elected a new leader.
  expect(acked.length).toBeGreaterThan(ackedBeforeKill + 100);
  for (const n of cluster.nodes) {
    const r = await n.request<ReadKeysResult>({ op: 'readKeys', keys: acked, consistency: 'linearizable' }, 30_000);
    expect(r.missing).toEqual([]);
  }
  const samples = lease.samples;
  expect(samples.length).toBeGreaterThan(300);
  expect(overlaps(claims(samples, (s) => s.hasLease))).toEqual([]);
});

/** A resource guarded by fencing tokens, kept in the store: it takes a write only with a token at least its newest. */
const FENCED_KEY = 'fenced-resource';
interface Fenced {
  readonly token: number;
  readonly value: string;
}

/** The guarded write, made through `node`: compare-and-set on the version read, so no check races a newer write. */
async function fencedWrite(node: NodeProcess, token: number, value: string): Promise<'written' | 'refused'> {
  for (;;) {
    const cur = await node.request<{ value: Fenced; version: number } | null>({ op: 'get', key: FENCED_KEY, consistency: 'linearizable' });
    if (cur && cur.value.token > token) return 'refused';
    const r = await node.request<{ ok: boolean }>({ op: 'cas', key: FENCED_KEY, expectedVersion: cur?.version ?? 0, value: { token, value } });
    if (r.ok) return 'written';
  }
}

test('the leading app node paused past its session lease: its lease ends before the next begins, and its old token is refused', async () => {
  const old = await cluster.leader(15_000);
  const others = cluster.nodes.filter((n) => n !== old);
  const mine = await old.request<LockAcquireResult>({ op: 'lockAcquire', name: 'job', ttl: 2000, wait: 5000 });
  const lease = (poller = new LeasePoller(cluster.nodes));
  lease.start(10);
  await sleep(200);

  await old.signal('SIGSTOP');
  const stoppedAt = Date.now();
  let resumed = false;
  try {
    const next = await cluster.leader(20_000, others);
    // The new leader takes the job's lock once the paused holder's lease has run out, with a larger token, and
    // records it where fenced writes are checked.
    const theirs = await next.request<LockAcquireResult>({ op: 'lockAcquire', name: 'job', ttl: 2000, wait: 15_000 });
    expect(theirs.token).toBeGreaterThan(mine.token);
    expect(await fencedWrite(next, theirs.token, 'written by the new holder')).toBe('written');
    await old.signal('SIGCONT');
    resumed = true;
    const pausedMs = Date.now() - stoppedAt;

    // Right after resuming, the old holder no longer believes it holds the lock.
    const held = await old.request<LockHeldResult>({ op: 'lockHeld', name: 'job', token: mine.token });
    expect(held.held).toBe(false);
    // A write fenced with the old token, made from the resumed node, is refused: the resource has seen a newer one.
    expect(await fencedWrite(old, mine.token, 'written by the paused holder')).toBe('refused');
    const kept = await next.request<{ value: Fenced } | null>({ op: 'get', key: FENCED_KEY, consistency: 'linearizable' });
    expect(kept?.value).toEqual({ token: theirs.token, value: 'written by the new holder' });
    await waitUntil('the old leader stepping down', 10_000, async () => {
      const s = await old.request<{ isLeader: boolean }>({ op: 'status' });
      return s.isLeader ? undefined : true;
    });
    await poller.stop();
    poller = null;

    const cs = claims(lease.samples, (s) => s.hasLease);
    const oldClaims = cs.filter((c) => c.node === old.id && c.from < stoppedAt);
    const nextClaims = cs.filter((c) => c.node === next.id);
    console.log(
      `etcd app pause: paused ${pausedMs} ms, old lease bound +${Math.round(Math.max(...oldClaims.map((c) => c.to)) - stoppedAt)} ms, ` +
        `next lease from +${Math.round(Math.min(...nextClaims.map((c) => c.from)) - stoppedAt)} ms`,
    );
    expect(oldClaims.length).toBeGreaterThan(0);
    expect(nextClaims.length).toBeGreaterThan(0);
    // Its leader work could run only until its lease bound, which passed before another node's lease began.
    expect(Math.max(...oldClaims.map((c) => c.to))).toBeLessThan(Math.min(...nextClaims.map((c) => c.from)));
    expect(overlaps(cs)).toEqual([]);
  } finally {
    if (!resumed) await old.signal('SIGCONT');
  }
});
