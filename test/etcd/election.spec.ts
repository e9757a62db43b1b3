/** Leader election on a real 3-member etcd: one leader, agreeing observers, tenures that never overlap. */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { LeadershipState } from '../../lib/cluster/backend';
import { callOptions, connectEtcd } from '../../lib/cluster/etcd/etcd-client';
import { EtcdElection, sessionTiming } from '../../lib/cluster/etcd/election';
import { SessionLease } from '../../lib/cluster/etcd/session-lease';
import { EtcdKeys, revisionOf } from '../../lib/cluster/etcd/keys';
import { NotLeaderException } from '../../lib/cluster/errors';
import { systemClock, systemTimers, type Timers } from '../../lib/io/clock';
import type { ClusterLogger } from '../../lib/cluster/logger';
import { etcdHosts, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { sleep, waitUntil } from '../support/process-cluster';

jest.setTimeout(90_000);

let etcd: EtcdCluster;
beforeAll(async () => {
  etcd = await startEtcd(3);
});
afterAll(async () => {
  await etcd?.destroy();
});

interface Node {
  readonly id: string;
  readonly election: EtcdElection;
  readonly client: Etcd3;
  /** clock.now() of every lease change of this node. */
  readonly leaseChanges: { valid: boolean; at: number }[];
  readonly leadershipChanges: { s: LeadershipState; at: number }[];
}

let nodes: Node[] = [];
/** The log, timestamped on the monotonic clock: shown when an assertion on overlaps fails. */
const logs: string[] = [];
const stamp = () => systemClock.now().toFixed(0);
const logger: ClusterLogger = {
  log: (m) => logs.push(`${stamp()} log ${m}`),
  warn: (m) => logs.push(`${stamp()} warn ${m}`),
  error: (m) => logs.push(`error ${m}`),
};

const newKeys = () => new EtcdKeys(`t${randomBytes(4).toString('hex')}/`);

/** One node, not started yet; stopped and closed after the test. */
async function makeNode(keys: EtcdKeys, id: string, electionTimeoutMs = 150, timers: Timers = systemTimers): Promise<Node> {
  const client = await connectEtcd({ hosts: etcdHosts(etcd), requestTimeoutMs: 1_000 }, `${keys.prefix}probe`);
  const election = new EtcdElection({
    client,
    keys,
    self: { id, address: `127.0.0.1:${1000 + id.charCodeAt(0)}`, clientId: `${id}-client` },
    clock: systemClock,
    timers,
    logger,
    electionTimeoutMs,
    requestTimeoutMs: 1_000,
  });
  const node: Node = { id, election, client, leaseChanges: [], leadershipChanges: [] };
  election.onLeaseChange((valid) => {
    node.leaseChanges.push({ valid, at: systemClock.now() });
    logs.push(`${stamp()} ${id} lease ${valid} (session ${election.session?.id ?? 'none'})`);
  });
  election.onLeadershipChange((s) => node.leadershipChanges.push({ s, at: systemClock.now() }));
  nodes.push(node);
  return node;
}

async function startNodes(ids: readonly string[]): Promise<{ keys: EtcdKeys; nodes: Node[] }> {
  const keys = newKeys();
  const started = await Promise.all(ids.map((id) => makeNode(keys, id)));
  await Promise.all(started.map((n) => n.election.start()));
  return { keys, nodes: started };
}

afterEach(async () => {
  await Promise.all(nodes.map((n) => n.election.stop()));
  for (const n of nodes) n.client.close();
  nodes = [];
  logs.length = 0;
});

/** Exactly one node leads with a valid lease and every live node agrees on its id and term. */
async function agreedLeader(among: readonly Node[], timeoutMs = 20_000, after = 0): Promise<{ leader: Node; term: number }> {
  return waitUntil('one leader all nodes agree on', timeoutMs, async () => {
    const leaders = among.filter((n) => n.election.hasValidLease());
    if (leaders.length !== 1) return undefined;
    const leader = leaders[0]!;
    const s = leader.election.leadership;
    if (!s.isLeader || s.leaderId !== leader.id || s.term <= after) return undefined;
    for (const n of among) {
      const v = n.election.leadership;
      if (v.leaderId !== leader.id || v.term !== s.term || v.isLeader !== (n === leader)) return undefined;
    }
    return { leader, term: s.term };
  });
}

/** Samples every 10 ms that at most one node holds a valid lease; returns a function that stops and reports. */
function watchOverlap(among: readonly Node[]): () => { samples: number; overlaps: number } {
  let samples = 0;
  let overlaps = 0;
  const t = setInterval(() => {
    samples++;
    const valid = among.filter((n) => n.election.hasValidLease());
    if (valid.length > 1) {
      const who = valid.map((n) => `${n.id} (term ${n.election.leadership.term}, lease ${n.election.session?.id}, until ${n.election.session?.validUntil.toFixed(0)})`);
      if (overlaps++ === 0) logs.push(`${stamp()} OVERLAP: ${who.join('; ')}`);
    }
  }, 10);
  return () => {
    clearInterval(t);
    return { samples, overlaps };
  };
}

test('exactly one of three leads, observers agree, and the term is the key create revision, rising over resigns', async () => {
  const { keys, nodes: all } = await startNodes(['a', 'b', 'c']);
  let { leader, term } = await agreedLeader(all);
  const terms = [term];
  const stopSampling = watchOverlap(all);
  for (let i = 0; i < 3; i++) {
    const key = leader.election.ownKey()!;
    expect(key.startsWith(keys.electionPrefix)).toBe(true);
    const kv = (await leader.client.get(key).options(callOptions(2_000)).exec()).kvs[0]!;
    expect(revisionOf(kv.create_revision)).toBe(term);
    expect(JSON.parse(kv.value.toString())).toEqual({ id: leader.id, address: expect.any(String), clientId: `${leader.id}-client`, ttlMs: 2_000 });
    expect(leader.election.tenureToken()).toBe(term);
    for (const n of all) if (n !== leader) expect(n.election.leaderValue()?.id).toBe(leader.id);

    const before = leader;
    await leader.election.resign();
    expect(before.election.hasValidLease()).toBe(false);
    expect(before.leaseChanges.at(-1)?.valid).toBe(false);
    ({ leader, term } = await agreedLeader(all, 20_000, term));
    terms.push(term);
  }
  const { samples, overlaps } = stopSampling();
  expect(samples).toBeGreaterThan(0);
  expect({ overlaps, logs: overlaps ? logs : [] }).toEqual({ overlaps: 0, logs: [] });
  for (let i = 1; i < terms.length; i++) expect(terms[i]!).toBeGreaterThan(terms[i - 1]!);
  // Resigned nodes went to the back of the line: three resigns walk through all three nodes.
  expect(new Set(all.filter((n) => n.leadershipChanges.some((c) => c.s.isLeader)).map((n) => n.id)).size).toBe(3);
});

test("a crashed leader's tenure ends locally before any other node leads, and the next term is larger", async () => {
  const { nodes: all } = await startNodes(['a', 'b', 'c']);
  const { leader, term } = await agreedLeader(all);
  const others = all.filter((n) => n !== leader);
  const stopSampling = watchOverlap(all);
  const crashedAt = systemClock.now();
  leader.election.crash();
  const next = await agreedLeader(others, 30_000, term);
  const { overlaps } = stopSampling();

  const ended = leader.leaseChanges.find((c) => !c.valid && c.at >= crashedAt);
  expect(ended).toBeDefined();
  const firstOtherLead = Math.min(
    ...others.flatMap((n) => n.leadershipChanges.filter((c) => c.s.isLeader && c.at >= crashedAt).map((c) => c.at)),
  );
  expect(ended!.at).toBeLessThan(firstOtherLead);
  expect(leader.election.leadership.isLeader).toBe(false);
  expect(next.term).toBeGreaterThan(term);
  expect({ overlaps, logs: overlaps ? logs : [] }).toEqual({ overlaps: 0, logs: [] });
  // The takeover waited for etcd to expire the lease: roughly a TTL (2 s), not at once.
  expect(firstOtherLead - crashedAt).toBeGreaterThan(1_000);
});

test("a shorter-TTL successor waits out the longer TTL of a predecessor whose key vanished unreleased: no overlap", async () => {
  const keys = newKeys();
  // electionTimeout 300 ms -> 3 s session TTL; 150 ms -> 2 s.
  const long = await makeNode(keys, 'l', 300);
  const short = await makeNode(keys, 's', 150);
  expect([sessionTiming(300).ttlS, sessionTiming(150).ttlS]).toEqual([3, 2]);
  await long.election.start();
  await agreedLeader([long]);
  await short.election.start();
  const { term } = await agreedLeader([long, short]);
  // The short node campaigned and waits behind the long one's key.
  await waitUntil('both candidates campaigned', 10_000, async () => {
    const r = await long.client.getAll().prefix(keys.electionPrefix).options(callOptions(1_000)).exec();
    return r.kvs.length === 2 ? true : undefined;
  });
  const ownKey = long.election.ownKey()!;
  const kv = (await long.client.get(ownKey).options(callOptions(1_000)).exec()).kvs[0]!;
  expect(JSON.parse(kv.value.toString())).toMatchObject({ id: 'l', ttlMs: 3_000 });

  // Right after a renewal the long node's local lease lasts longest: nearly its full 3 s TTL.
  const renewedFrom = long.election.session!.validUntil;
  await waitUntil('a renewal of the long node', 5_000, async () => (long.election.session!.validUntil > renewedFrom ? true : undefined), 1);

  // One sampler on one clock, every 5 ms.
  let samples = 0;
  let overlaps = 0;
  const sampler = setInterval(() => {
    samples++;
    if (long.election.hasValidLease() && short.election.hasValidLease() && overlaps++ === 0) logs.push(`${stamp()} OVERLAP`);
  }, 5);
  try {
    // etcd's early revoke, as the old leader lives it: the key vanishes without a released mark, and the node, cut
    // off from etcd (its watch on a stalled member), keeps its local lease until validUntil. crash() is that node.
    long.election.crash();
    const deletedAt = systemClock.now();
    await long.client.delete().key(ownKey).options(callOptions(1_000)).exec();
    logs.push(`${stamp()} deleted ${ownKey}`);
    const next = await agreedLeader([short], 15_000, term);
    expect(next.leader).toBe(short);
    const counted = short.leaseChanges.find((c) => c.valid)!.at;
    expect({ waited: counted - deletedAt >= 3_000, logs: counted - deletedAt >= 3_000 ? [] : logs }).toEqual({ waited: true, logs: [] });
    // The long node's own lease ended (by its clock) before the short one's counted.
    const ended = long.leaseChanges.find((c) => !c.valid)!.at;
    expect(ended).toBeLessThan(counted);
    await sleep(50);
  } finally {
    clearInterval(sampler);
  }
  expect(samples).toBeGreaterThan(100);
  expect({ overlaps, logs: overlaps ? logs : [] }).toEqual({ overlaps: 0, logs: [] });
});

test('stop() after crash() ends the tenure at once and leaves no timer of the election pending', async () => {
  const pending = new Set<object>();
  const counting: Timers = {
    setTimeout(fn, ms) {
      const h = {};
      pending.add(h);
      const t = systemTimers.setTimeout(() => {
        pending.delete(h);
        fn();
      }, ms);
      return {
        cancel: () => {
          pending.delete(h);
          t.cancel();
        },
      };
    },
    setImmediate: (fn) => systemTimers.setImmediate(fn),
  };
  const node = await makeNode(newKeys(), 'a', 150, counting);
  await node.election.start();
  await agreedLeader([node]);
  node.election.crash();
  expect(node.election.hasValidLease()).toBe(true); // until validUntil, by its own clock
  await node.election.stop();
  expect(node.election.hasValidLease()).toBe(false);
  expect(node.leaseChanges.at(-1)?.valid).toBe(false);
  await sleep(100); // callbacks of calls that were in flight
  expect(pending.size).toBe(0);
});

test('confirm() resolves on the leader with a revision at or past the term, and throws NotLeaderException elsewhere', async () => {
  const { nodes: all } = await startNodes(['a', 'b', 'c']);
  const { leader, term } = await agreedLeader(all);
  expect(await leader.election.confirm(2_000)).toBeGreaterThanOrEqual(term);
  for (const n of all.filter((x) => x !== leader)) {
    const e = await n.election.confirm(2_000).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(NotLeaderException);
    expect((e as NotLeaderException).leaderId).toBe(leader.id);
    expect(n.election.tenureToken()).toBeNull();
    expect(n.election.ownKey()).toBeNull();
  }
});

test.each(['SIGKILL', 'SIGSTOP'] as const)(
  "%s of etcd's leader member: at most one valid lease at every 10 ms sample, and leadership recovers",
  async (sig) => {
    const { nodes: all } = await startNodes(['a', 'b', 'c']);
    const { term } = await agreedLeader(all);
    const stopSampling = watchOverlap(all);
    const etcdLeader = await etcd.settled(20_000);
    try {
      if (sig === 'SIGKILL') await etcdLeader.stop('SIGKILL');
      else etcdLeader.pause();
      logs.push(`${stamp()} stopped ${etcdLeader.name}`);
      await sleep(3_000);
      const during = await agreedLeader(all, 30_000);
      expect(during.term).toBeGreaterThanOrEqual(term);
      logs.push(`${stamp()} resuming ${etcdLeader.name}`);
      if (sig === 'SIGSTOP') etcdLeader.resume();
      else await etcd.restart(etcdLeader);
      await sleep(1_000);
      await agreedLeader(all, 30_000);
    } finally {
      if (sig === 'SIGSTOP') {
        try {
          etcdLeader.resume();
        } catch {
          // not running
        }
      } else if (!etcdLeader.running) await etcd.restart(etcdLeader);
    }
    const { samples, overlaps } = stopSampling();
    expect(samples).toBeGreaterThan(100);
    expect({ overlaps, logs: overlaps ? logs : [] }).toEqual({ overlaps: 0, logs: [] });
    // etcd being unreachable is worth a warning, not a flood: once per outage per component.
    const warns = logs.filter((l) => l.startsWith('warn') && /failed, retrying/.test(l));
    expect(warns.length).toBeLessThan(40);
  },
);

test('a session lease renews itself, bounds validUntil by send time + TTL − margin, and lapses once when etcd drops it', async () => {
  const client = await connectEtcd({ hosts: etcdHosts(etcd), requestTimeoutMs: 1_000 }, 'lease-test/probe');
  const leases: SessionLease[] = [];
  try {
    const { ttlS, marginMs } = sessionTiming(150);
    expect({ ttlS, marginMs }).toEqual({ ttlS: 2, marginMs: 200 });
    const before = systemClock.now();
    const lease = await SessionLease.grant(client, ttlS, { clock: systemClock, timers: systemTimers, logger, marginMs, requestTimeoutMs: 1_000 });
    leases.push(lease);
    const after = systemClock.now();
    expect(lease.ttlS).toBe(2);
    // Counted from the grant's send time: between the call and its answer.
    expect(lease.validUntil).toBeGreaterThanOrEqual(before + ttlS * 1000 - marginMs);
    expect(lease.validUntil).toBeLessThanOrEqual(after + ttlS * 1000 - marginMs);
    let lapses = 0;
    lease.onLapse(() => lapses++);
    await sleep(3 * ttlS * 1000); // several TTLs: only keepalives keep it
    expect(lease.valid()).toBe(true);
    expect(lease.validUntil).toBeGreaterThan(systemClock.now());
    expect(lease.validUntil).toBeLessThanOrEqual(systemClock.now() + ttlS * 1000 - marginMs);

    await client.leaseClient.leaseRevoke({ ID: lease.id }, callOptions(1_000)); // etcd drops it behind its back
    const dropped = systemClock.now();
    await waitUntil('the lease lapses', 5_000, async () => (lapses > 0 ? true : undefined), 5);
    expect(systemClock.now() - dropped).toBeLessThan((ttlS * 1000) / 3 + 500);
    expect(lease.valid()).toBe(false);
    await sleep(1_000);
    expect(lapses).toBe(1);
    await lease.revoke(); // after a lapse: harmless
  } finally {
    for (const l of leases) l.abandon();
    client.close();
  }
});
