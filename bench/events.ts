/**
 * `npm run bench -- events`: two latencies of the application-facing features, each on three real node processes on
 * 127.0.0.1 (test/e2e/node-main, fsync on, seed defaults), each with its own event loop.
 *
 * 1. event_fanout_ms: a cluster event published on a follower (coordinator.publishEvent, the call the Nest EventBus
 *    publisher makes for a @ClusterEvent), from just before publishEvent until the last of the three nodes handed it
 *    to its deliverEvents sink (node-main's sink, without Nest: where the Nest module would call EventBus.publish).
 *    Open loop at 1 000 events/s. Times are epochMs() (performance.timeOrigin + performance.now()), comparable between
 *    processes on this machine. etcd's counterpart: puts on a follower seen by one watcher per member.
 * 2. singleton_handoff_ms: kill -9 of the leader running the chaos leader-work app (Nest, an @Interval(100)
 *    @SingletonTask whose first step of each run appends a line to the node's effect log): from the killed leader's
 *    last fire to the first fire on another node. Ours only.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { epochMs, type EventDeliveryTimesResult, type PublishEventsResult } from '../test/support/node-protocol.js';
import { ProcessCluster, sleep, type NodeProcess } from '../test/support/process-cluster.js';
import { guardCluster } from './cleanup.js';
import { settled } from './cluster.js';
import type { Pair } from './compare.js';
import { ETCD_ELECTION_MS, ETCD_HEARTBEAT_MS } from './compare.js';
import { findEtcd, type EtcdBinary } from '../test/support/etcd-binary.js';
import { etcdFanoutCase, type FanoutSample } from './etcd/etcd-cases.js';
import { EtcdCluster } from '../test/support/etcd-cluster.js';
import { emit, percentile, round, rounds, type Measurement } from './measure.js';

export interface EventsOptions {
  readonly quick: boolean;
  /** Ours: fan-out on basePort..+2 (without Nest) and basePort+25..+27 (Nest), hand-off on basePort+20..+22. */
  readonly basePort: number;
  readonly etcdPort: number;
  readonly dir: string;
  readonly withEtcd: boolean;
  /** Hand-off rounds (default 7, quick 3). */
  readonly handoffRounds: number;
}

export interface EventsResult {
  readonly metrics: Record<string, Pair>;
  readonly etcd: EtcdBinary | null;
}

const SECRET = 'bench-secret-0123456789';
export const FANOUT_RATE = 1000;
/**
 * Published before the measured ones, on both sides: connections, and the JIT, which needs more than a few hundred
 * rounds (after 500 events our publish p50 was still 2 ms, after 2 000 under 1 ms, the steady state writes show).
 */
const WARM_EVENTS = 2000;

function fanoutMeasurement(s: FanoutSample, rate: number, ranOn: string): Measurement {
  const q = (p: number) => round(percentile(s.latenciesMs, p));
  return {
    events: s.latenciesMs.length,
    ratePerSec: rate,
    seconds: round((s.endedAt - s.startedAt) / 1000),
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    p999Ms: q(0.999),
    maxMs: q(1),
    undelivered: s.undelivered,
    errors: s.errors,
    publishedOn: ranOn,
  };
}

/** Where a fan-out run's events are published and how each node's delivery times are read back. */
interface FanoutVia {
  /** Added to the publishEvents request: EventBus publishes in the leader-work app, or none (coordinator). */
  readonly eventBusFirstN?: number;
  /** epochMs() of delivery by event name, one record per node, in c.nodes order. */
  deliveries(c: ProcessCluster, prefix: string): Promise<EventDeliveryTimesResult[]>;
}

const viaCoordinator: FanoutVia = {
  deliveries: (c, prefix) => Promise.all(c.nodes.map((n) => n.request<EventDeliveryTimesResult>({ op: 'eventDeliveryTimes', namePrefix: prefix }, 30_000))),
};

/** The leader-work app's @EventsHandler writes `{ type: 'event', n, at }` to each node's effect log. */
function viaEventBus(logOf: (id: string) => string, firstN: number): FanoutVia {
  return {
    eventBusFirstN: firstN,
    deliveries: async (c, prefix) =>
      c.nodes.map((n) => {
        const out: EventDeliveryTimesResult = {};
        for (const l of effectLines(logOf(n.id))) {
          if (l.type === 'event' && typeof l.n === 'number') out[`${prefix}${l.n - firstN}`] = l.at;
        }
        return out;
      }),
  };
}

/** Our fan-out: publishEvents on `publisher`, then every node's delivery times (bounded wait for the last ones). */
async function oursFanout(c: ProcessCluster, publisher: NodeProcess, count: number, prefix: string, via: FanoutVia): Promise<FanoutSample> {
  const r = await publisher.request<PublishEventsResult>(
    { op: 'publishEvents', count, ratePerSec: FANOUT_RATE, namePrefix: prefix, eventBusFirstN: via.eventBusFirstN },
    (count / FANOUT_RATE) * 1000 + 60_000,
  );
  const deadline = Date.now() + 10_000;
  let times: EventDeliveryTimesResult[] = [];
  for (;;) {
    times = await via.deliveries(c, prefix);
    const mine = (t: EventDeliveryTimesResult) => Object.keys(t).filter((k) => k.startsWith(prefix)).length;
    if (times.every((t) => mine(t) >= count - r.errors) || Date.now() > deadline) break;
    await sleep(50);
  }
  const latenciesMs: number[] = [];
  const ackMs: number[] = [];
  const perNode: number[][] = c.nodes.map(() => []);
  let undelivered = 0;
  r.names.forEach((name, i) => {
    if (r.indexes[i] === -1) return; // failed publish: counted in errors
    ackMs.push(r.ackAt[i]! - r.startAt[i]!);
    const at = times.map((t) => t[name]);
    at.forEach((x, j) => x !== undefined && perNode[j]!.push(x - r.startAt[i]!));
    if (at.some((x) => x === undefined)) undelivered++;
    else latenciesMs.push(Math.max(...(at as number[])) - r.startAt[i]!);
  });
  const p50 = (xs: readonly number[]) => round(percentile(xs, 0.5));
  const p99 = (xs: readonly number[]) => round(percentile(xs, 0.99));
  const detail: Measurement = {
    publishAckP50Ms: p50(ackMs),
    publishAckP99Ms: p99(ackMs),
    nodes: c.nodes.map((n) => n.id).join(' '),
    nodeDeliveryP50Ms: perNode.map(p50),
    nodeDeliveryP99Ms: perNode.map(p99),
  };
  return { latenciesMs, undelivered, errors: r.errors, startedAt: r.startAt[0] ?? Number.NaN, endedAt: r.startAt[r.startAt.length - 1] ?? Number.NaN, detail };
}

/** One fan-out run of ours on a fresh cluster: a warm-up, then `count` events published on a follower. */
async function oursFanoutRun(opts: EventsOptions, count: number, nest: boolean): Promise<Measurement> {
  // The handlers' effect log is the harness's record, not the application's work: on tmpfs where there is one, so its
  // thousand writes a second do not queue in the journal with the nodes' WAL writes.
  const logs = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : opts.dir, 'catga-bench-effects-'));
  const ids = ['f1', 'f2', 'f3'];
  const logOf = (id: string) => join(logs, `${id}.jsonl`);
  const c = new ProcessCluster({
    ids,
    basePort: opts.basePort + (nest ? 25 : 0),
    secret: SECRET,
    dataParent: opts.dir,
    ...(nest && { env: { CATGA_TEST_APP: 'leader-work' }, nodeEnv: Object.fromEntries(ids.map((id) => [id, { CATGA_EFFECT_LOG: logOf(id) }])) }),
  });
  const unguard = guardCluster(c);
  try {
    await Promise.all(c.nodes.map((n) => n.start(60_000)));
    const leader = await settled(c, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;
    const via = (firstN: number) => (nest ? viaEventBus(logOf, firstN) : viaCoordinator);
    await oursFanout(c, follower, WARM_EVENTS, 'warm-', via(1_000_000));
    const s = await oursFanout(c, follower, count, 'evf-', via(2_000_000));
    return {
      ...fanoutMeasurement(s, FANOUT_RATE, follower.id),
      leader: leader.id,
      ...s.detail,
      deliveredBy: nest
        ? 'EventBus.publish of a @ClusterEvent on a follower, to an @EventsHandler on every node (test/chaos leader-work app, Nest)'
        : 'coordinator.publishEvent, to the deliverEvents sink (node-main, no Nest)',
    };
  } finally {
    await c.destroy();
    unguard();
    rmSync(logs, { recursive: true, force: true });
  }
}

async function runFanout(opts: EventsOptions, binary: EtcdBinary | null): Promise<Pair> {
  const seconds = opts.quick ? 2 : 5;
  const count = FANOUT_RATE * seconds;
  const warm = WARM_EVENTS;
  // The metric is the Nest path the application uses; the library path without Nest shows what Nest adds.
  const core = await oursFanoutRun(opts, count, false);
  emit('events', 'event_fanout_core', core);
  const nest = await oursFanoutRun(opts, count, true);
  const ours: Measurement = { ...nest, withoutNestP50Ms: core.p50Ms ?? null, withoutNestP99Ms: core.p99Ms ?? null };
  emit('events', 'event_fanout_ms', ours);
  if (!binary) return { ours };
  const e = new EtcdCluster({ binary, dataParent: opts.dir, clientPort: opts.etcdPort, peerPort: opts.etcdPort + 10, heartbeatMs: ETCD_HEARTBEAT_MS, electionMs: ETCD_ELECTION_MS });
  let etcd: Measurement;
  try {
    await e.start();
    const leader = await e.settled();
    const follower = e.members.find((m) => m !== leader)!;
    await etcdFanoutCase(e, follower, warm, FANOUT_RATE, 'warm-');
    const s = await etcdFanoutCase(e, follower, count, FANOUT_RATE, 'evf-');
    etcd = { ...fanoutMeasurement(s, FANOUT_RATE, follower.name), leader: leader.name, ...s.detail, deliveredBy: 'one etcd3 watcher per member, in the benchmark process' };
  } finally {
    await e.destroy();
  }
  emit('etcd', 'event_fanout_ms', etcd);
  return { ours, etcd };
}

interface EffectLine {
  readonly type: string;
  readonly step?: number;
  readonly n?: number;
  readonly node: string;
  readonly at: number;
}

/** The lines of a node's effect log written so far. */
function effectLines(file: string): EffectLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as EffectLine;
      } catch {
        return null; // a line cut short by kill -9 mid-write
      }
    })
    .filter((l): l is EffectLine => l !== null);
}

/** The first-step lines of the singleton task (one per fire that ran) in a node's effect log. */
function fires(file: string): EffectLine[] {
  return effectLines(file).filter((l) => l.type === 'step' && l.step === 1);
}

interface HandoffRound {
  readonly ms: number;
  readonly killToFirstMs: number;
  readonly lastToKillMs: number;
  readonly killed: string;
  readonly firstOn: string;
}

async function runHandoff(opts: EventsOptions): Promise<Pair> {
  const logs = mkdtempSync(join(opts.dir, 'catga-bench-effects-'));
  const ids = ['h1', 'h2', 'h3'];
  const logOf = (id: string) => join(logs, `${id}.jsonl`);
  const c = new ProcessCluster({
    ids,
    basePort: opts.basePort + 20,
    secret: SECRET,
    dataParent: opts.dir,
    env: { CATGA_TEST_APP: 'leader-work' },
    nodeEnv: Object.fromEntries(ids.map((id) => [id, { CATGA_EFFECT_LOG: logOf(id) }])),
  });
  const unguard = guardCluster(c);
  const out: HandoffRound[] = [];
  try {
    await Promise.all(c.nodes.map((n) => n.start(60_000)));
    for (let r = 0; r < opts.handoffRounds; r++) {
      const leader = await settled(c, 30_000);
      // Let the leader fire steadily for a while (at least a few periods) before it dies.
      const since = epochMs();
      const deadline = Date.now() + 10_000;
      while (fires(logOf(leader.id)).filter((f) => f.at > since).length < 3 && Date.now() < deadline) await sleep(50);
      const killAt = epochMs();
      await leader.signal('SIGKILL');
      const others = ids.filter((id) => id !== leader.id);
      let first: EffectLine | undefined;
      const until = Date.now() + 10_000;
      while (!first && Date.now() < until) {
        first = others
          .flatMap((id) => fires(logOf(id)))
          .filter((f) => f.at > killAt)
          .sort((a, b) => a.at - b.at)[0];
        if (!first) await sleep(20);
      }
      const last = fires(logOf(leader.id))
        .filter((f) => f.at <= killAt)
        .sort((a, b) => b.at - a.at)[0];
      if (!first || !last) throw new Error(`singleton hand-off round ${r}: ${!last ? `no fire on ${leader.id} before the kill` : 'no fire on another node within 10 s'}`);
      const round1: HandoffRound = { ms: first.at - last.at, killToFirstMs: first.at - killAt, lastToKillMs: killAt - last.at, killed: leader.id, firstOn: first.node };
      out.push(round1);
      emit('events', 'singleton_handoff_round', { round: r, ms: round(round1.ms, 1), killToFirstMs: round(round1.killToFirstMs, 1), lastToKillMs: round(round1.lastToKillMs, 1), killed: round1.killed, firstOn: round1.firstOn });
      await leader.start(60_000);
    }
  } finally {
    await c.destroy();
    unguard();
    rmSync(logs, { recursive: true, force: true });
  }
  const ours: Measurement = {
    ...rounds(out.map((x) => x.ms)),
    killToFirstMedianMs: round(percentile(out.map((x) => x.killToFirstMs), 0.5), 1),
    killToFirstMs: out.map((x) => round(x.killToFirstMs, 1)),
    periodMs: 100,
    app: 'test/chaos leader-work (Nest, @Interval(100) @SingletonTask)',
  };
  emit('events', 'singleton_handoff_ms', ours);
  return { ours };
}

export async function runEventsBench(opts: EventsOptions): Promise<EventsResult> {
  const binary = opts.withEtcd ? findEtcd() : null;
  const metrics: Record<string, Pair> = {};
  metrics.event_fanout_ms = await runFanout(opts, binary);
  metrics.singleton_handoff_ms = await runHandoff(opts);
  return { metrics, etcd: binary };
}
