/**
 * `npm run bench -- backends`: the embedded Raft backend against the etcd backend, the same operations on each, so an
 * application can see what choosing `backend: { type: 'etcd' }` costs. Each side is three app node processes
 * (test/e2e/node-main, seed defaults) on free loopback ports; the etcd side adds a real 3-member etcd (startEtcd:
 * heartbeat 50 ms, election 500 ms, fsync on, data under the system temp dir) and points the nodes at it with
 * CATGA_ETCD_HOSTS and a prefix of their own. The sides run one after the other, the first torn down before the
 * second starts, so neither competes with the other's idle processes for the two CPUs.
 *
 * 1. backend_forward_ms: coordinator.requestLeader from a follower to a trivial handler on the leader and back,
 *    one at a time, after a warm-up (node-main's forwardLoad op, timed inside the follower).
 * 2. backend_lock_ms: locks.acquire + release from a follower, one at a time (lockLoad with one worker).
 * 3. backend_event_fanout_ms: coordinator.publishEvent on a follower until the last of the three nodes delivered it
 *    (publishEvents + eventDeliveryTimes, as bench/events.ts does without Nest), open loop at a modest rate.
 * 4. backend_failover_ms: kill -9 of the leading node until a survivor answers a probe holding a leader lease
 *    (hasLease); the killed node is restarted between rounds.
 */
import { randomUUID } from 'node:crypto';
import { epochMs, type EventDeliveryTimesResult, type ForwardLoadResult, type ProbeResult, type PublishEventsResult } from '../test/support/node-protocol.js';
import { findEtcd } from '../test/support/etcd-binary.js';
import { etcdHosts, startEtcd, type EtcdCluster } from '../test/support/etcd-cluster.js';
import { ProcessCluster, sleep, waitUntil, type NodeProcess } from '../test/support/process-cluster.js';
import { freePorts } from '../test/transport/helpers.js';
import { guardCluster } from './cleanup.js';
import { lockCase } from './cluster.js';
import type { Pair } from './compare.js';
import { emit, percentile, round, rounds, throughput, type Measurement } from './measure.js';

export const BACKEND_METRICS = ['backend_forward_ms', 'backend_lock_ms', 'backend_event_fanout_ms', 'backend_failover_ms'] as const;
type BackendMetric = (typeof BACKEND_METRICS)[number];

/** startEtcd's timing flags (the etcd the etcd backend's tests run on). */
export const BACKEND_ETCD_HEARTBEAT_MS = 50;
export const BACKEND_ETCD_ELECTION_MS = 500;

export interface BackendsOptions {
  readonly quick: boolean;
  /** Parent of the app nodes' data dirs. */
  readonly dir: string;
  /** kill -9 rounds per side. */
  readonly failoverRounds: number;
  /** Measure the embedded side only. */
  readonly withEtcd: boolean;
}

export interface BackendsResult {
  readonly metrics: Record<string, Pair>;
  readonly etcdVersion: string | null;
}

type Side = 'embedded' | 'etcd';

const SECRET = 'bench-secret-0123456789';
const LOCK_TTL_MS = 10_000;
/** Modest: well within what either backend sustains, so the latency is that of one event, not of a queue. */
const FANOUT_RATE = 200;
/** Warm-up events, faster than the measured ones: the JIT needs a few thousand rounds (see bench/events.ts). */
const WARM_EVENTS = 2000;
const WARM_RATE = 500;
/** Probe polls on each survivor after a kill: fine enough for either backend's failover, light on two CPUs. */
const PROBE_EVERY_MS = 2;

/** One node leads with a valid lease and every running node names it. */
async function agreed(c: ProcessCluster, timeoutMs = 30_000): Promise<NodeProcess> {
  return waitUntil('an agreed leader', timeoutMs, async () => {
    const live = c.nodes.filter((n) => n.running);
    const all = await Promise.all(live.map((n) => n.status()));
    const i = all.findIndex((s) => s.isLeader && s.leaseValid);
    if (i < 0 || live.length !== c.nodes.length || !all.every((s) => s.leaderId === all[i]!.nodeId)) return undefined;
    return live[i];
  });
}

async function forwardCase(follower: NodeProcess, count: number, warmup: number): Promise<Measurement> {
  const r = await follower.request<ForwardLoadResult>({ op: 'forwardLoad', count, warmup, timeoutMs: 5000 }, 120_000);
  return {
    ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors),
    meanMs: round(r.latencies.reduce((a, b) => a + b, 0) / Math.max(1, r.latencies.length) / 1000),
    warmup,
    ranOn: follower.id,
    servedBy: Object.entries(r.servedBy)
      .map(([id, n]) => `${id}:${n}`)
      .join(' '),
  };
}

/** `count` events published on `publisher` at `rate`/s; each one's time until the last node delivered it. */
async function fanoutCase(c: ProcessCluster, publisher: NodeProcess, count: number, rate: number, prefix: string): Promise<Measurement> {
  const r = await publisher.request<PublishEventsResult>({ op: 'publishEvents', count, ratePerSec: rate, namePrefix: prefix }, (count / rate) * 1000 + 60_000);
  // Deliveries trail the last publish: read until every node has every published event, or give up after 10 s.
  const deadline = Date.now() + 10_000;
  let times: EventDeliveryTimesResult[];
  for (;;) {
    times = await Promise.all(c.nodes.map((n) => n.request<EventDeliveryTimesResult>({ op: 'eventDeliveryTimes', namePrefix: prefix }, 30_000)));
    if (times.every((t) => Object.keys(t).length >= count - r.errors) || Date.now() > deadline) break;
    await sleep(50);
  }
  const latenciesMs: number[] = [];
  const ackMs: number[] = [];
  let undelivered = 0;
  r.names.forEach((name, i) => {
    if (r.indexes[i] === -1) return; // failed publish: counted in errors
    ackMs.push(r.ackAt[i]! - r.startAt[i]!);
    const at = times.map((t) => t[name]);
    if (at.some((x) => x === undefined)) undelivered++;
    else latenciesMs.push(Math.max(...(at as number[])) - r.startAt[i]!);
  });
  const q = (p: number) => round(percentile(latenciesMs, p));
  return {
    events: latenciesMs.length,
    ratePerSec: rate,
    seconds: round((r.startAt[r.startAt.length - 1]! - r.startAt[0]!) / 1000),
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: q(1),
    publishAckP50Ms: round(percentile(ackMs, 0.5)),
    publishAckP99Ms: round(percentile(ackMs, 0.99)),
    undelivered,
    errors: r.errors,
    publishedOn: publisher.id,
  };
}

interface FailoverRound {
  /** kill -9 until a survivor answered a probe holding a leader lease. */
  readonly ms: number;
  /** kill -9 until a survivor answered a probe as leader, lease or not. */
  readonly leaderMs: number;
  readonly killed: string;
  readonly next: string;
  /** The new leader's lease length (the session TTL on etcd), as its probe reports it. */
  readonly leaseMs: number;
}

async function failoverRound(c: ProcessCluster): Promise<FailoverRound> {
  const leader = await agreed(c);
  await sleep(300); // a steady leader: heartbeats and, on etcd, session keep-alives under way
  const survivors = c.nodes.filter((n) => n !== leader);
  const killAt = epochMs();
  await leader.signal('SIGKILL');
  let leaderAt = Number.NaN;
  const found = await waitUntil(
    'a survivor holding a leader lease',
    30_000,
    async () => {
      const ps = await Promise.all(survivors.map((s) => s.request<ProbeResult>({ op: 'probe' }, 2000).catch(() => null)));
      for (const p of ps) if (p?.isLeader && Number.isNaN(leaderAt)) leaderAt = p.at;
      return ps.find((p) => p?.hasLease) ?? undefined;
    },
    PROBE_EVERY_MS,
  );
  await leader.start(60_000);
  return { ms: found.at - killAt, leaderMs: (Number.isNaN(leaderAt) ? found.at : leaderAt) - killAt, killed: leader.id, next: found.nodeId, leaseMs: found.leaseMs };
}

/** Every metric on one backend: three fresh node processes, torn down (processes and data dirs) at the end. */
async function runSide(side: Side, opts: BackendsOptions, etcd: EtcdCluster | null): Promise<Record<BackendMetric, Measurement>> {
  const c = new ProcessCluster({
    ids: ['b1', 'b2', 'b3'],
    ports: await freePorts(3),
    secret: SECRET,
    dataParent: opts.dir,
    ...(etcd && { env: { CATGA_ETCD_HOSTS: etcdHosts(etcd).join(','), CATGA_ETCD_PREFIX: `bench/${randomUUID()}/` } }),
  });
  const unguard = guardCluster(c);
  const tag = (m: Measurement): Measurement => ({ backend: side, ...m });
  const out = {} as Record<BackendMetric, Measurement>;
  const put = (metric: BackendMetric, m: Measurement): void => {
    out[metric] = tag(m);
    emit('backends', metric, out[metric]);
  };
  try {
    await Promise.all(c.nodes.map((n) => n.start(60_000)));
    const followerOf = async () => {
      const leader = await agreed(c);
      return { leader, follower: c.nodes.find((n) => n !== leader)! };
    };

    let { leader, follower } = await followerOf();
    const forward = await forwardCase(follower, opts.quick ? 2000 : 10_000, opts.quick ? 1000 : 2000);
    put('backend_forward_ms', { ...forward, leader: leader.id });

    ({ leader, follower } = await followerOf());
    const lockMs = opts.quick ? 1500 : 4000;
    await lockCase(follower, 1, opts.quick ? 1000 : 2000, 'bl-warm-', LOCK_TTL_MS);
    put('backend_lock_ms', { ...(await lockCase(follower, 1, lockMs, 'bl-', LOCK_TTL_MS)), leader: leader.id });

    ({ leader, follower } = await followerOf());
    const fanSeconds = opts.quick ? 2 : 5;
    await fanoutCase(c, follower, opts.quick ? WARM_EVENTS / 2 : WARM_EVENTS, WARM_RATE, 'bw-');
    put('backend_event_fanout_ms', { ...(await fanoutCase(c, follower, FANOUT_RATE * fanSeconds, FANOUT_RATE, 'bf-')), leader: leader.id });

    const rs: FailoverRound[] = [];
    for (let r = 0; r < opts.failoverRounds; r++) {
      const x = await failoverRound(c);
      rs.push(x);
      emit('backends', 'backend_failover_round', { backend: side, round: r, ms: round(x.ms, 1), leaderMs: round(x.leaderMs, 1), killed: x.killed, next: x.next });
    }
    put('backend_failover_ms', {
      ...rounds(rs.map((x) => x.ms)),
      leaderMedianMs: round(percentile(rs.map((x) => x.leaderMs), 0.5), 1),
      leaderMs: rs.map((x) => round(x.leaderMs, 1)),
      leaseMs: Math.max(...rs.map((x) => x.leaseMs)),
      until: 'a survivor answers a probe with hasLease',
    });
    return out;
  } finally {
    await c.destroy();
    unguard();
  }
}

export async function runBackendsBench(opts: BackendsOptions): Promise<BackendsResult> {
  const embedded = await runSide('embedded', opts, null);
  let onEtcd: Record<BackendMetric, Measurement> | null = null;
  let etcdVersion: string | null = null;
  if (opts.withEtcd) {
    etcdVersion = findEtcd().version;
    const etcd = await startEtcd(3); // killed and its data dirs removed at exit too, should destroy() not be reached
    try {
      onEtcd = await runSide('etcd', opts, etcd);
    } finally {
      await etcd.destroy();
    }
  }
  const metrics: Record<string, Pair> = {};
  for (const m of BACKEND_METRICS) metrics[m] = { ours: embedded[m], ...(onEtcd && { etcd: onEtcd[m] }) };
  return { metrics, etcdVersion };
}
