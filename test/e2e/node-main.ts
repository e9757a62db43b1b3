/**
 * One cluster node as a real process, for end-to-end tests and benchmarks: the library without Nest, configured by
 * the CATGA_* environment and driven by its parent over IPC (`process.send`). Not the sample app.
 *
 * With CATGA_TEST_APP=leader-work the same node runs inside a Nest application context with the chaos leader-work
 * workloads (test/chaos/leader-work-app.ts, loaded only then), writing its effect log to CATGA_EFFECT_LOG.
 */
import { createCluster } from '../../lib/cluster/create-cluster.js';
import { EtcdBackend } from '../../lib/cluster/etcd/etcd-backend.js';
import type { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import type { DistributedLock } from '../../lib/cluster/distributed-lock.js';
import type { Clock } from '../../lib/io/clock.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { resolveClusterOptions, type ClusterOptions } from '../../lib/cluster/options.js';
import type { RaftRuntime, RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import { leaseTicksFor } from '../../lib/raft/config.js';
import type { LeaderWork } from '../chaos/leader-work-app.js';
import {
  BENCH_ECHO_CHANNEL,
  epochMs,
  type EventPositionResult,
  type ForwardLoadResult,
  type LockAcquireResult,
  type LockHeldResult,
  type NodeReply,
  type NodeRequest,
  type EventDeliveryTimesResult,
  type ProbeResult,
  type ProbesResult,
  type PublishEventsResult,
  type ReadKeysResult,
  type LockLoadResult,
  type MemoryResult,
  type ReadLoadResult,
  type StallResult,
  type WriteLoadResult,
} from '../support/node-protocol.js';

const id = process.env.CATGA_NODE_ID ?? 'node1';
const num = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

function log(level: 'log' | 'warn' | 'error') {
  return (m: string) => {
    if (process.env.CATGA_QUIET && level === 'log') return;
    console[level](`[${id}] ${m}`);
  };
}

/** The Raft runtime, for snapshotNow; null in the leader-work mode. */
let runtime: RaftRuntime | null = null;
/** The lease length in ms with the core's default clock-drift bound (the runtime does not change it); set in main. */
let leaseMs = 0;

/** status() right after start, before any peer could have sent anything: what was recovered from the dataDir. */
let bootStatus: RuntimeStatus | null = null;

/** What the IPC ops act on. */
interface Served {
  readonly cluster: ClusterCoordinator;
  /** The `stop` op: stops the coordinator, or closes the whole app in the leader-work mode. */
  readonly stop: () => Promise<void>;
  /** The Nest app's buses, in the leader-work mode only. */
  readonly work: LeaderWork | null;
}

async function handle(served: Served, r: NodeRequest): Promise<unknown> {
  const { cluster } = served;
  switch (r.op) {
    case 'status':
      return cluster.status();
    case 'put':
      return cluster.store.put(r.key, r.value);
    case 'get':
      return (await cluster.store.get(r.key, { consistency: r.consistency ?? 'linearizable' })) ?? null;
    case 'cas':
      return cluster.store.cas(r.key, r.expectedVersion, r.value);
    case 'delete':
      return cluster.store.delete(r.key);
    case 'waitForLeader':
      return cluster.waitForLeader({ timeout: r.timeout });
    case 'transfer':
      return cluster.transferLeadership(r.to);
    case 'writeLoad':
      return writeLoad(cluster, r);
    case 'readLoad':
      return readLoad(cluster, r);
    case 'probe':
      return probe(cluster);
    case 'bootStatus':
      return bootStatus;
    case 'readKeys':
      return readKeys(cluster, r.keys, r.consistency ?? 'linearizable');
    case 'stall':
      return stall(cluster, r.ms);
    case 'lockLoad':
      return lockLoad(cluster, r);
    case 'memory':
      return memory(r.gc ?? false);
    case 'lockAcquire':
      return lockAcquire(cluster, r);
    case 'lockHeld': {
      const held = locks.get(lockKey(r.name, r.token))?.held ?? false;
      return { held, at: epochMs() } satisfies LockHeldResult;
    }
    case 'lockRelease': {
      const lock = locks.get(lockKey(r.name, r.token));
      locks.delete(lockKey(r.name, r.token));
      await lock?.release();
      return lock !== undefined;
    }
    case 'stop':
      await served.stop();
      setImmediate(() => process.exit(0));
      return true;
    case 'command':
      return leaderWork(served, r.op).execute(r.commandId);
    case 'publish':
      return leaderWork(served, r.op).publish(r.n);
    case 'eventPosition':
      return { position: cluster.eventPosition } satisfies EventPositionResult;
    case 'members':
      return cluster.members.map((m) => ({ ...m }));
    case 'memberChange':
      return memberChange(cluster, r);
    case 'membershipHistory':
      return cluster.membershipHistory();
    case 'publishEvent':
      return cluster.publishEvent(r.name, r.payload);
    case 'deliveredEvents':
      return delivered;
    case 'probes':
      return probes(cluster);
    case 'publishEvents': {
      const first = r.eventBusFirstN;
      const work = first === undefined ? null : leaderWork(served, r.op);
      return publishEvents(r, (name, i) => (work ? work.publish(first! + i) : cluster.publishEvent(name, i)));
    }
    case 'eventDeliveryTimes':
      return eventDeliveryTimes(r.namePrefix);
    case 'snapshotNow':
      return runtime?.snapshotNow() ?? false;
    case 'forwardLoad':
      return forwardLoad(cluster, r);
  }
}

/** Sequential requests to the leader's echo handler (see the op in node-protocol.ts). */
async function forwardLoad(cluster: ClusterCoordinator, r: Req<'forwardLoad'>): Promise<ForwardLoadResult> {
  const latencies: number[] = [];
  const errorNames: Record<string, number> = {};
  const servedBy: Record<string, number> = {};
  let errors = 0;
  let startedAt = epochMs();
  for (let i = 0; i < r.warmup + r.count; i++) {
    if (i === r.warmup) startedAt = epochMs();
    const t = performance.now();
    try {
      const { value } = await cluster.requestLeader(BENCH_ECHO_CHANNEL, i, r.timeoutMs);
      if (i < r.warmup) continue;
      latencies.push(Math.round((performance.now() - t) * 1000));
      servedBy[String(value)] = (servedBy[String(value)] ?? 0) + 1;
    } catch (e) {
      if (i >= r.warmup) {
        errors++;
        countError(errorNames, e);
      }
      // No leader known fails at once: do not spin.
      await new Promise((res) => setTimeout(res, 1));
    }
  }
  return { latencies, errors, errorNames, startedAt, endedAt: epochMs(), servedBy };
}

async function memberChange(cluster: ClusterCoordinator, r: Req<'memberChange'>): Promise<true> {
  const m = cluster.members;
  if (r.change === 'add') await m.add({ id: r.member, address: r.address ?? '', role: r.role });
  else await m[r.change](r.member);
  return true;
}

/** The Nest health indicator's answers, loaded on first use (Nest takes a moment to load). */
async function probes(cluster: ClusterCoordinator): Promise<ProbesResult> {
  const { ClusterHealthIndicator } = await import('../../lib/nest/ops/cluster-health.indicator.js');
  const h = new ClusterHealthIndicator(cluster);
  return { ready: h.isReady().cluster, live: h.isLive().cluster };
}

/** Cluster events delivered here (without Nest), as `index:name`, in delivery order. */
const delivered: string[] = [];

/** epochMs() at which the deliverEvents sink got each event (without Nest), by name; the last delivery of a name wins. */
const deliveredAt = new Map<string, number>();

function eventDeliveryTimes(prefix: string): EventDeliveryTimesResult {
  const out: EventDeliveryTimesResult = {};
  for (const [name, at] of deliveredAt) if (name.startsWith(prefix)) out[name] = at;
  return out;
}

/** Open-loop publishes at a fixed rate (see the op in node-protocol.ts); every due publish starts when the loop wakes. */
async function publishEvents(r: Req<'publishEvents'>, publish: (name: string, i: number) => Promise<{ readonly index: number }>): Promise<PublishEventsResult> {
  const names: string[] = [];
  const startAt: number[] = [];
  const indexes: number[] = Array.from({ length: r.count }, () => -1);
  const ackAt: number[] = Array.from({ length: r.count }, () => -1);
  const errorNames: Record<string, number> = {};
  let errors = 0;
  const pending: Promise<void>[] = [];
  const intervalMs = 1000 / r.ratePerSec;
  const origin = performance.now();
  for (let i = 0; i < r.count; ) {
    const due = origin + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) {
      await new Promise((res) => setTimeout(res, wait));
      continue;
    }
    const name = `${r.namePrefix}${i}`;
    const k = i;
    names.push(name);
    startAt.push(epochMs());
    pending.push(
      publish(name, k).then(
        (p) => {
          ackAt[k] = epochMs();
          indexes[k] = p.index;
        },
        (e: unknown) => {
          errors++;
          countError(errorNames, e);
        },
      ),
    );
    i++;
  }
  await Promise.all(pending);
  return { names, startAt, indexes, ackAt, errors, errorNames };
}

function leaderWork(served: Served, op: string): LeaderWork {
  if (!served.work) throw new Error(`${op}: this node runs without the leader-work app (start it with CATGA_TEST_APP=leader-work)`);
  return served.work;
}

function answer(r: NodeRequest, result: Promise<unknown>): void {
  result.then(
    (value) => process.send!({ id: r.id, ok: true, result: value } satisfies NodeReply),
    (e: Error) => process.send!({ id: r.id, ok: false, error: { name: e.name, message: e.message } } satisfies NodeReply),
  );
}

type Req<Op extends NodeRequest['op']> = Extract<NodeRequest, { op: Op }>;

/** Locks acquired over IPC and not yet released, by name and token. */
const locks = new Map<string, DistributedLock>();
const lockKey = (name: string, token: number): string => `${token}:${name}`;

async function lockAcquire(cluster: ClusterCoordinator, r: Req<'lockAcquire'>): Promise<LockAcquireResult> {
  const lock = await cluster.locks.acquire(r.name, { ttl: r.ttl, wait: r.wait });
  const at = epochMs();
  locks.set(lockKey(r.name, lock.token), lock);
  return { token: lock.token, at };
}

/**
 * CATGA_TEST_CLOCK_RATE (e.g. 0.95): this node's monotonic clock runs at that rate from its start, to skew it
 * against the others. Unset: the system clock.
 */
function testClock(): Clock | undefined {
  const rate = num('CATGA_TEST_CLOCK_RATE');
  if (rate === undefined) return undefined;
  if (!(rate >= 0.5 && rate <= 1.5)) throw new Error(`CATGA_TEST_CLOCK_RATE must be a number in [0.5, 1.5], got ${process.env.CATGA_TEST_CLOCK_RATE}`);
  const origin = performance.now();
  return { now: () => origin + (performance.now() - origin) * rate };
}

function countError(names: Record<string, number>, e: unknown): void {
  const name = e instanceof Error ? e.name : 'unknown';
  names[name] = (names[name] ?? 0) + 1;
}

/**
 * `writers` concurrent loops of puts for `durationMs` (or until `maxWrites` were acknowledged): the latency of each
 * acknowledged write in µs, the acknowledged keys, and the longest time a writer made no progress.
 */
async function writeLoad(cluster: ClusterCoordinator, r: Req<'writeLoad'>): Promise<WriteLoadResult> {
  const latencies: number[] = [];
  const acked: string[] = [];
  const startAt: number[] = [];
  const endAt: number[] = [];
  const errorNames: Record<string, number> = {};
  let errors = 0;
  let maxGapMs = 0;
  const maxWrites = r.maxWrites ?? Number.POSITIVE_INFINITY;
  const filler = r.valueBytes === undefined ? null : 'x'.repeat(r.valueBytes);
  const startedAt = epochMs();
  const end = performance.now() + r.durationMs;
  await Promise.all(
    Array.from({ length: r.writers }, async (_, w) => {
      let lastProgress = performance.now();
      for (let i = 0; performance.now() < end && acked.length < maxWrites; i++) {
        const key = `${r.keyPrefix}${w}-${i}`;
        const t = performance.now();
        try {
          await cluster.store.put(key, filler ?? i);
          const done = performance.now();
          latencies.push(Math.round((done - t) * 1000));
          acked.push(key);
          maxGapMs = Math.max(maxGapMs, done - lastProgress);
          lastProgress = done;
          if (r.detail) {
            startAt.push(performance.timeOrigin + t);
            endAt.push(performance.timeOrigin + done);
          }
        } catch (e) {
          errors++;
          countError(errorNames, e);
          // A failing write returns at once on some paths (no leader known): do not spin.
          await new Promise((res) => setTimeout(res, 1));
        }
      }
      maxGapMs = Math.max(maxGapMs, Math.min(performance.now(), end) - lastProgress);
    }),
  );
  const result: WriteLoadResult = { latencies, acked, errors, errorNames, startedAt, endedAt: epochMs(), maxGapMs };
  return r.detail ? { ...result, startAt, endAt } : result;
}

/** `readers` concurrent loops of gets over `keys` for `durationMs`: the latency of each successful read in µs. */
async function readLoad(cluster: ClusterCoordinator, r: Req<'readLoad'>): Promise<ReadLoadResult> {
  const latencies: number[] = [];
  const errorNames: Record<string, number> = {};
  let errors = 0;
  const consistency = r.consistency ?? 'linearizable';
  const startedAt = epochMs();
  const end = performance.now() + r.durationMs;
  await Promise.all(
    Array.from({ length: r.readers }, async (_, w) => {
      for (let i = w; performance.now() < end; i++) {
        const t = performance.now();
        try {
          await cluster.store.get(r.keys[i % r.keys.length]!, { consistency });
          latencies.push(Math.round((performance.now() - t) * 1000));
        } catch (e) {
          errors++;
          countError(errorNames, e);
          await new Promise((res) => setTimeout(res, 1));
        }
      }
    }),
  );
  return { latencies, errors, errorNames, startedAt, endedAt: epochMs() };
}

/** `workers` concurrent loops of acquire then release for `durationMs`: the latency of each round trip in µs. */
async function lockLoad(cluster: ClusterCoordinator, r: Req<'lockLoad'>): Promise<LockLoadResult> {
  const latencies: number[] = [];
  const acquireLatencies: number[] = [];
  const errorNames: Record<string, number> = {};
  let errors = 0;
  const startedAt = epochMs();
  const end = performance.now() + r.durationMs;
  await Promise.all(
    Array.from({ length: r.workers }, async (_, w) => {
      const name = r.shared ? r.namePrefix : `${r.namePrefix}${w}`;
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const lock = await cluster.locks.acquire(name, { ttl: r.ttl, wait: Math.max(0, end - t) + 1000 });
          const acquired = performance.now();
          await lock.release();
          acquireLatencies.push(Math.round((acquired - t) * 1000));
          latencies.push(Math.round((performance.now() - t) * 1000));
        } catch (e) {
          errors++;
          countError(errorNames, e);
          await new Promise((res) => setTimeout(res, 1));
        }
      }
    }),
  );
  return { latencies, acquireLatencies, errors, errorNames, startedAt, endedAt: epochMs() };
}

function memory(gc: boolean): MemoryResult {
  // globalThis.gc exists only under --expose-gc (the memory benchmark starts nodes with it).
  const collect = (globalThis as { gc?: () => void }).gc;
  if (gc && collect) collect();
  const m = process.memoryUsage();
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, gcRan: gc && collect !== undefined, at: epochMs() };
}

function probe(cluster: ClusterCoordinator): ProbeResult {
  // status() first: it reports the core as it is, without catching up its clock; hasLease() catches up.
  const s = cluster.status();
  const hasLease = cluster.hasLease();
  const at = epochMs();
  if (cluster.backend instanceof EtcdBackend) {
    // On etcd the lease is the session lease: it surely ends by its validUntil (monotonic), here in epoch ms.
    const session = cluster.backend.election.session;
    const bound = hasLease && session ? at + (session.validUntil - cluster.clock.now()) + 1 : null;
    return { nodeId: s.nodeId, isLeader: s.isLeader, leaseValid: s.leaseValid, hasLease, leaderId: s.leaderId, term: s.term, at, leaseBound: bound, leaseMs: (session?.ttlS ?? 0) * 1000 };
  }
  const contacts = s.members.filter((m) => m.role !== 'self').map((m) => m.lastContactMs ?? Number.POSITIVE_INFINITY);
  contacts.sort((a, b) => a - b);
  // The quorum counts this node; the (quorum - 1)-th most recent follower completes it. +1 ms: lastContactMs is rounded.
  const quorumContact = contacts[Math.floor(s.members.length / 2) - 1] ?? Number.POSITIVE_INFINITY;
  return {
    nodeId: s.nodeId,
    isLeader: s.isLeader,
    leaseValid: s.leaseValid,
    hasLease,
    leaderId: s.leaderId,
    term: s.term,
    at,
    leaseBound: hasLease ? at - quorumContact + leaseMs + 1 : null,
    leaseMs,
  };
}

function stall(cluster: ClusterCoordinator, ms: number): StallResult {
  const before = probe(cluster);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const at = epochMs();
  const s = cluster.status();
  return {
    before,
    statusAfter: { isLeader: s.isLeader, leaseValid: s.leaseValid, term: s.term, leaderId: s.leaderId },
    hasLeaseAfter: cluster.hasLease(),
    at,
  };
}

/** One read barrier (when linearizable), then every key read from the local state: one linearizable snapshot. */
async function readKeys(cluster: ClusterCoordinator, keys: readonly string[], consistency: 'local' | 'linearizable'): Promise<ReadKeysResult> {
  if (consistency === 'linearizable' && keys.length > 0) await cluster.store.get(keys[0]!, { consistency });
  const versions: Record<string, number> = {};
  const missing: string[] = [];
  for (const key of keys) {
    const e = await cluster.store.get(key, { consistency: 'local' });
    versions[key] = e?.version ?? 0;
    if (!e) missing.push(key);
  }
  return { versions, missing };
}

async function main(): Promise<void> {
  const options = {
    fromEnv: true, // CATGA_MEMBERS, CATGA_SECRET, … come from the test's environment
    nodeId: id,
    compactionThreshold: num('CATGA_COMPACTION'),
    electionTimeout: num('CATGA_ELECTION_TIMEOUT'),
    heartbeatInterval: num('CATGA_HEARTBEAT'),
    autoRemoveAfter: num('CATGA_AUTO_REMOVE_AFTER'),
    leaveOnShutdown: process.env.CATGA_LEAVE_ON_SHUTDOWN === '1' || undefined,
    logger: { log: log('log'), warn: log('warn'), error: log('error') },
  };
  const resolved = resolveClusterOptions(options);
  leaseMs = leaseTicksFor(resolved.electionTick, 0.1) * resolved.tickMs;
  const app = process.env.CATGA_TEST_APP;
  if (app === 'leader-work') return mainLeaderWork(options);
  if (app !== undefined) throw new Error(`CATGA_TEST_APP must be leader-work or unset, got ${app}`);
  const cluster = await createCluster(options, { clock: testClock(), onRuntime: (r) => (runtime = r) });
  bootStatus = cluster.status();
  cluster.onRequest(BENCH_ECHO_CHANNEL, async () => id);
  cluster.deliverEvents({
    deliver: (e) => {
      deliveredAt.set(e.name, epochMs());
      delivered.push(`${e.index}:${e.name}`);
    },
    missed: (g) => void delivered.push(`missed:${g.after}-${g.upTo}`),
  });
  const served: Served = { cluster, stop: () => cluster.stop(), work: null };
  process.on('message', (r: NodeRequest) => answer(r, handle(served, r)));
  process.on('SIGTERM', () => void cluster.stop().then(() => process.exit(0)));
  // The parent is gone (a test runner that crashed): do not linger holding a port and a dataDir.
  process.on('disconnect', () => process.exit(1));
  process.send!({ id: 0, ok: true, result: 'ready' } satisfies NodeReply);
}

/**
 * The leader-work mode: the node inside a Nest app, which takes a second to load and boot. Requests that arrive
 * meanwhile wait for it rather than being lost; SIGTERM closes the app (its shutdown hooks hand leadership over).
 */
async function mainLeaderWork(options: ClusterOptions & { readonly logger: ClusterLogger }): Promise<void> {
  const effectLogPath = process.env.CATGA_EFFECT_LOG;
  if (!effectLogPath) throw new Error('CATGA_EFFECT_LOG must name the effect log file in the leader-work mode');
  const booted = import('../chaos/leader-work-app.js').then((m) => m.startLeaderWorkApp({ cluster: options, clock: testClock(), effectLogPath }));
  const served: Promise<Served> = booted.then((a) => ({ cluster: a.cluster, stop: () => a.close(), work: a.work }));
  served.catch(() => undefined); // a failed boot is reported once, by main's caller
  process.on('message', (r: NodeRequest) => answer(r, served.then((s) => handle(s, r))));
  process.on('SIGTERM', () => void served.then((s) => s.stop()).finally(() => process.exit(0)));
  process.on('disconnect', () => process.exit(1));
  bootStatus = (await booted).bootStatus;
  process.send!({ id: 0, ok: true, result: 'ready' } satisfies NodeReply);
}

main().catch((e: Error) => {
  console.error(`[${id}] failed to start: ${e.message}`);
  process.exit(1);
});
