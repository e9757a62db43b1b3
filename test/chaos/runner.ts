/**
 * One chaos run: real node processes on 127.0.0.1 (or, with partitions, each in its own network namespace), kv and
 * lock clients in this process, the leader-work clients (forwarded commands, cluster events; the nodes' singleton
 * task fires by itself), the nemesis, then the checks. Every node process is killed and every namespace removed at
 * the end, whatever happened (and on process exit, as a last resort).
 */
import { NetnsLab } from '../support/netns.js';
import { epochMs } from '../support/node-protocol.js';
import { Prng } from '../support/prng.js';
import { ProcessCluster, assertBuilt } from '../support/process-cluster.js';
import { FencedResource } from './fencing-resource.js';
import { History, type OpKind, type OutcomeCounts } from './history.js';
import { checkKv, type KvCheckResult } from './kv-check.js';
import { performKvOp, runKvClient } from './kv-client.js';
import { checkLeaderWork, type LeaderWorkResult } from './leader-work-check.js';
import {
  COMMAND_CLIENTS_PER_NODE,
  LEADER_WORK_ENV,
  eventClients,
  keepEffectLogs,
  readEffectLogs,
  startLeaderWorkClients,
  useEffectLogs,
  type EffectLogs,
} from './leader-work-run.js';
import { BELIEF_TOLERANCE_MS, checkLocks } from './lock-check.js';
import { runLockClient } from './lock-client.js';
import { CLOCK_RATES, Nemesis, type Fault, type FaultKind } from './nemesis.js';

export interface ChaosOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  /** Length of the fault phase. */
  readonly seconds: number;
  /** The nodes listen on basePort … basePort + nodes − 1. */
  readonly basePort: number;
  readonly log?: (message: string) => void;
  /** Ends the fault phase early (the checks still run on what was recorded). */
  readonly signal?: AbortSignal;
  /** Run the nodes in network namespaces (needs root) and add network partitions to the faults. */
  readonly partitions?: boolean;
  /**
   * Run the nodes as Nest apps with the leader-work workloads (forwarded commands, a singleton task, cluster events)
   * and check them too. Default true; false runs the plain node program with the kv and lock clients only.
   */
  readonly leaderWork?: boolean;
}

/** The leader-work workloads' counts, and whether the nodes had delivered the same events when their logs were read. */
export type LeaderWorkSummary = Omit<LeaderWorkResult, 'violations'> & { readonly converged: boolean };

export interface ChaosSummary {
  readonly seed: number;
  readonly nodes: number;
  /** Present when the nodes ran in network namespaces and the nemesis cut links between them. */
  readonly partitions?: { readonly subnet: string };
  readonly seconds: number;
  /** How long faults were actually injected, ms. */
  readonly chaosMs: number;
  readonly clients: { readonly kv: number; readonly lock: number; readonly command?: number; readonly event?: number };
  /** Clock rates the nodes started with. */
  readonly clockRates: Record<string, number>;
  readonly ops: Partial<Record<OpKind, OutcomeCounts>>;
  readonly errors: Record<string, Record<string, number>>;
  readonly faults: Partial<Record<FaultKind, number>>;
  /** Faults that could not be injected (e.g. a transfer while no leader was known). */
  readonly faultsNotInjected: number;
  readonly lockGrants: number;
  readonly fencing: { readonly accepted: number; readonly rejections: number };
  readonly lease: {
    readonly observations: number;
    readonly minGapMs: number | null;
    /** Where the lock moved on because a lease ran out (no release asked for). */
    readonly minGapAfterExpiryMs: number | null;
    readonly toleranceMs: number;
  };
  readonly linearizability: Omit<KvCheckResult, 'violation'>;
  /** With leaderWork. */
  readonly leaderWork?: LeaderWorkSummary;
  readonly violations: string[];
  readonly result: 'pass' | 'fail' | 'inconclusive';
  /** Unless the run passed: every fault, timed like the operations in the violations (ms since the run began). */
  readonly faultLog?: readonly Fault[];
  /** Unless the run passed (with leaderWork): where the nodes' effect logs were copied. */
  readonly effectLogs?: string;
}

const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
const LOCK_NAMES = ['lock-a', 'lock-b'];
const KV_CLIENTS_PER_NODE = 2;
const LOCK_CLIENTS_PER_NODE = 2;

export async function runChaos(o: ChaosOptions): Promise<ChaosSummary> {
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new RangeError(`seed must be a whole number >= 0, got ${o.seed}`);
  if (o.nodes !== 3 && o.nodes !== 5) throw new RangeError(`nodes must be 3 or 5, got ${String(o.nodes)}`);
  if (!(o.seconds > 0 && o.seconds <= 86_400)) throw new RangeError(`seconds must be in (0, 86400], got ${o.seconds}`);
  assertBuilt();
  const leaderWork = o.leaderWork ?? true;
  const log = o.log ?? (() => undefined);
  const rng = new Prng(o.seed);
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const clockRates = Object.fromEntries(ids.map((id) => [id, Math.round(rng.range(CLOCK_RATES[0], CLOCK_RATES[1]) * 10_000) / 10_000]));
  const lab = o.partitions ? newLab(ids) : undefined;
  let cluster: ProcessCluster;
  try {
    cluster = new ProcessCluster({
      ids,
      basePort: o.basePort,
      nodeEnv: Object.fromEntries(ids.map((id) => [id, { CATGA_TEST_CLOCK_RATE: String(clockRates[id]) }])),
      netns: lab,
      ...(leaderWork ? { env: LEADER_WORK_ENV } : {}),
    });
    if (leaderWork) useEffectLogs(cluster);
  } catch (e) {
    lab?.destroy();
    throw e;
  }
  // If this process exits before `finally` runs, paused children would never see their IPC channel close.
  const killAll = () => {
    for (const n of cluster.nodes) {
      try {
        if (n.pid !== undefined) process.kill(n.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killAll);

  const history = new History();
  const resource = new FencedResource();
  let nemesis: Nemesis | null = null;
  let chaosMs = 0;
  /** The cluster did not serve again once every fault had healed. */
  let unrecovered: string | null = null;
  let effects: EffectLogs | null = null;
  try {
    await cluster.start();
    await cluster.leader(15_000);
    const where = lab ? `in network namespaces on ${lab.subnet}.0/24` : 'on 127.0.0.1';
    log(`${o.nodes} nodes up ${where} (clock rates ${JSON.stringify(clockRates)}); ${o.seconds} s of chaos, seed ${o.seed}`);
    const startedAt = epochMs();
    const endAt = startedAt + o.seconds * 1000;
    const done = () => epochMs() >= endAt || o.signal?.aborted === true;
    // Forked in a fixed order: each component draws from its own stream.
    nemesis = new Nemesis({ cluster, rng: rng.fork(), maxFaulty: Math.floor((o.nodes - 1) / 2), now: () => history.now(), done, log, netns: lab });
    const kvClients = cluster.nodes.flatMap((node, i) =>
      Array.from({ length: KV_CLIENTS_PER_NODE }, (_, j) =>
        runKvClient({ id: i * KV_CLIENTS_PER_NODE + j, node, keys: KEYS, rng: rng.fork(), history, done }),
      ),
    );
    const lockClients = cluster.nodes.flatMap((node, i) =>
      Array.from({ length: LOCK_CLIENTS_PER_NODE }, (_, j) =>
        runLockClient({ id: i * LOCK_CLIENTS_PER_NODE + j, node, names: LOCK_NAMES, rng: rng.fork(), history, resource, done }),
      ),
    );
    // Forked after the others, so kv and lock clients draw what they drew before leader work existed.
    const leaderWorkClients = leaderWork ? startLeaderWorkClients({ cluster, rng: rng.fork(), history, done }) : [];
    const work = () => (leaderWork ? `, ${history.commands.length} commands, ${history.publishes.length} events published` : '');
    const progress = setInterval(() => log(`${Math.round((epochMs() - startedAt) / 1000)} s: ${history.kv.length} kv ops, ${history.grants.length} lock grants${work()}, ${nemesis!.faults.length} faults`), 10_000);
    // Settled, not all: a client that failed must not leave the nemesis restarting nodes after the cluster is gone.
    const settled = await Promise.allSettled([nemesis.run(), ...kvClients, ...lockClients, ...leaderWorkClients]);
    clearInterval(progress);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    chaosMs = Math.round(epochMs() - startedAt);
    unrecovered = await finalReads(cluster, history);
    if (leaderWork) effects = await readEffectLogs(cluster, history);
  } finally {
    try {
      await cluster.destroy();
    } finally {
      lab?.destroy();
      process.removeListener('exit', killAll);
    }
  }

  log(`checking ${history.kv.length} kv operations, ${history.grants.length} lock grants, ${resource.log.length} resource requests${effects ? `, ${history.commands.length} commands, ${history.publishes.length} events published and the effect logs` : ''}`);
  const kv = checkKv(history.kv);
  const locks = checkLocks({ grants: history.grants, resource: resource.log, beliefs: history.beliefs, releasedAt: history.releasedAt });
  const work = effects ? checkLeaderWork(effects.history, BELIEF_TOLERANCE_MS) : null;
  const violations = [
    ...(kv.violation ? [kv.violation] : []),
    ...locks.violations,
    ...(work?.violations ?? []),
    ...nemesis.problems.map((p) => `nemesis: ${p}`),
    ...(unrecovered ? [unrecovered] : []),
  ];
  const { violation: _, ...linearizability } = kv;
  const result = violations.length > 0 ? 'fail' : kv.timedOut ? 'inconclusive' : 'pass';
  const kept = effects && result !== 'pass' ? keepEffectLogs(effects.texts, o.seed) : null;
  if (kept) log(`effect logs kept in ${kept}`);
  return {
    seed: o.seed,
    nodes: o.nodes,
    ...(lab ? { partitions: { subnet: `${lab.subnet}.0/24` } } : {}),
    seconds: o.seconds,
    chaosMs,
    clients: {
      kv: o.nodes * KV_CLIENTS_PER_NODE,
      lock: o.nodes * LOCK_CLIENTS_PER_NODE,
      ...(leaderWork ? { command: o.nodes * COMMAND_CLIENTS_PER_NODE, event: eventClients(o.nodes) } : {}),
    },
    clockRates,
    ops: history.counts(),
    errors: history.errors,
    faults: nemesis.counts(),
    faultsNotInjected: nemesis.faults.filter((f) => f.error).length,
    lockGrants: history.grants.length,
    fencing: { accepted: resource.log.filter((r) => r.accepted).length, rejections: resource.rejections },
    lease: {
      observations: history.beliefs.length,
      minGapMs: roundOrNull(locks.minBeliefGapMs),
      minGapAfterExpiryMs: roundOrNull(locks.minExpiryGapMs),
      toleranceMs: BELIEF_TOLERANCE_MS,
    },
    linearizability,
    ...(work && effects ? { leaderWork: { commands: work.commands, fires: work.fires, events: work.events, converged: effects.converged } } : {}),
    violations,
    result,
    ...(result === 'pass' ? {} : { faultLog: nemesis.faults }),
    ...(kept ? { effectLogs: kept } : {}),
  };
}

/** A fresh lab for `ids`, after removing what crashed runs left; a clear error where namespaces cannot be used. */
function newLab(ids: readonly string[]): NetnsLab {
  const why = NetnsLab.unavailable();
  if (why !== null) throw new Error(`partitions need network namespaces: ${why}`);
  NetnsLab.cleanupStale();
  return new NetnsLab(ids);
}

/**
 * With every fault healed: one linearizable read of each key, so that an acknowledged write lost in a crash shows
 * as a read that no linearization can explain. Recorded as client −1. Returns why the cluster did not recover, if
 * it did not.
 */
async function finalReads(cluster: ProcessCluster, history: History): Promise<string | null> {
  const down = cluster.nodes.filter((n) => !n.running).map((n) => n.id);
  if (down.length > 0) return `after the faults healed, ${down.join(', ')} was not running`;
  try {
    await cluster.leader(15_000);
  } catch (e) {
    return `after the faults healed: ${(e as Error).message}`;
  }
  for (const [i, key] of KEYS.entries()) {
    await performKvOp({ id: -1, node: cluster.nodes[i % cluster.nodes.length]!, history }, { op: 'get', key });
  }
  return null;
}

function roundOrNull(x: number | null): number | null {
  return x === null ? null : Math.round(x * 10) / 10;
}
