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
import { findEtcd, type EtcdBinary } from './etcd/binary.js';
import { etcdFanoutCase, type FanoutSample } from './etcd/etcd-cases.js';
import { EtcdCluster } from './etcd/etcd-cluster.js';
import { emit, percentile, round, rounds, type Measurement } from './measure.js';

export interface EventsOptions {
  readonly quick: boolean;
  /** Ours: fan-out on basePort..+2, hand-off on basePort+20..+22. */
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

/** Our fan-out: publishEvents on `publisher`, then every node's delivery times (bounded wait for the last ones). */
async function oursFanout(c: ProcessCluster, publisher: NodeProcess, count: number, prefix: string): Promise<FanoutSample> {
  const r = await publisher.request<PublishEventsResult>({ op: 'publishEvents', count, ratePerSec: FANOUT_RATE, namePrefix: prefix }, (count / FANOUT_RATE) * 1000 + 60_000);
  const deadline = Date.now() + 10_000;
  let times: EventDeliveryTimesResult[] = [];
  for (;;) {
    times = await Promise.all(c.nodes.map((n) => n.request<EventDeliveryTimesResult>({ op: 'eventDeliveryTimes', namePrefix: prefix }, 30_000)));
    if (times.every((t) => Object.keys(t).length >= count - r.errors) || Date.now() > deadline) break;
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

async function runFanout(opts: EventsOptions, binary: EtcdBinary | null): Promise<Pair> {
  const seconds = opts.quick ? 2 : 5;
  const count = FANOUT_RATE * seconds;
  const warm = 500;
  let ours: Measurement;
  const c = new ProcessCluster({ basePort: opts.basePort, secret: SECRET, dataParent: opts.dir });
  const unguard = guardCluster(c);
  try {
    await c.start();
    const leader = await settled(c);
    const follower = c.nodes.find((n) => n !== leader)!;
    await oursFanout(c, follower, warm, 'warm-'); // connections, JIT
    const s = await oursFanout(c, follower, count, 'evf-');
    ours = { ...fanoutMeasurement(s, FANOUT_RATE, follower.id), leader: leader.id, ...s.detail, deliveredBy: 'deliverEvents sink (node-main, no Nest)' };
  } finally {
    await c.destroy();
    unguard();
  }
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

interface StepLine {
  readonly type: string;
  readonly step?: number;
  readonly node: string;
  readonly at: number;
}

/** The first-step lines of the singleton task (one per fire that ran) in a node's effect log. */
function fires(file: string): StepLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as StepLine;
      } catch {
        return null; // a line cut short by kill -9 mid-write
      }
    })
    .filter((l): l is StepLine => l !== null && l.type === 'step' && l.step === 1);
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
      let first: StepLine | undefined;
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
