/**
 * The side-by-side run: our 3-process cluster and a 3-member etcd on the same machine and disk, each case run on ours
 * then on etcd with the same duration (ours c1, etcd c1, ours c16, etcd c16, ...), the idle one left running.
 *
 * 1. Throughput on one pair of clusters whose state grows along the way: writes at 1, 16, 64, 256 writers from the
 *    leader and from a follower, linearizable reads at 64 readers from the leader and from a follower, lock
 *    acquire + release from the leader and from a follower, and (ours only) the longest writer stall on a small and
 *    on a grown state.
 * 2. Failover and graceful stop on a fresh pair, rounds alternating: kill -9 of the leader, SIGTERM of the leader.
 *
 * `runCompare5` (bench name cluster5) does the writes on the leader at 1 and 64 writers again with five members on
 * each side: five node processes and a 5-member etcd, after a warm-up, then both are torn down.
 */
import { resolveClusterOptions } from '../lib/testing.js';
import { ProcessCluster, type NodeProcess } from '../test/support/process-cluster.js';
import { guardCluster } from './cleanup.js';
import { failoverRound, gracefulRound, lockCase, readCase, settled, stallCase, writeCase } from './cluster.js';
import { findEtcd, type EtcdBinary } from '../test/support/etcd-binary.js';
import { etcdFailoverRound, etcdGracefulRound, etcdLockCase, etcdReadCase, etcdWriteCase } from './etcd/etcd-cases.js';
import { EtcdCluster, type EtcdMember } from '../test/support/etcd-cluster.js';
import { emit, percentile, round, rounds, type Measurement } from './measure.js';
import type { FailoverRound, GracefulRound } from './rounds.js';

export interface CompareOptions {
  /** ms per throughput case, the same for both. */
  readonly caseMs: number;
  readonly failoverRounds: number;
  readonly gracefulRounds: number;
  /** Ours: ports basePort..+2 (throughput), +10..+12 (failover). */
  readonly basePort: number;
  /** etcd: client ports etcdPort..+2, peer ports etcdPort+10..+12. */
  readonly etcdPort: number;
  /** Parent of every data dir (the disk being measured). */
  readonly dir: string;
  /** Measure ours only. */
  readonly withEtcd: boolean;
}

/** The five-member run: writes on the leader only. */
export interface Compare5Options {
  /** ms per case, the same for both. */
  readonly caseMs: number;
  /** Ours: ports basePort..+4. */
  readonly basePort: number;
  /** etcd: client ports etcdPort..+4, peer ports etcdPort+10..+14. */
  readonly etcdPort: number;
  /** Parent of every data dir (the disk being measured). */
  readonly dir: string;
  /** Measure ours only. */
  readonly withEtcd: boolean;
}

/** One metric, both sides. */
export interface Pair {
  readonly ours: Measurement;
  readonly etcd?: Measurement;
}

/** etcd's timing flags for every run: the failover comparison the design asks for (ours runs its seed defaults). */
export const ETCD_HEARTBEAT_MS = 50;
export const ETCD_ELECTION_MS = 250;
const LOCK_TTL_MS = 10_000;
/** Our timing options when none are given (the nodes run with them). */
const seed = resolveClusterOptions({ nodeId: 'bench' });
const SECRET = 'bench-secret-0123456789';

export interface CompareResult {
  readonly metrics: Record<string, Pair>;
  readonly etcd: EtcdBinary | null;
}

/**
 * An etcd of `members` members on client ports clientPort.. and peer ports clientPort+10..; null without a binary
 * (ours only).
 */
function etcdCluster(binary: EtcdBinary | null, dir: string, clientPort: number, members = 3): EtcdCluster | null {
  return (
    binary &&
    new EtcdCluster({
      binary,
      dataParent: dir,
      clientPort,
      peerPort: clientPort + 10,
      members,
      heartbeatMs: ETCD_HEARTBEAT_MS,
      electionMs: ETCD_ELECTION_MS,
    })
  );
}

/** Stores each pair under its metric and prints it: one JSON line for ours (as `bench`), one for etcd. */
function recorder(bench: string, metrics: Record<string, Pair>): (metric: string, pair: Pair) => void {
  return (metric, pair) => {
    metrics[metric] = pair;
    emit(bench, metric, pair.ours);
    if (pair.etcd) emit('etcd', metric, pair.etcd);
  };
}

/**
 * Makes our cluster and etcd's (none without a binary), starts both, runs `fn` on them, then kills every process and
 * removes every data dir: also when something fails, and at exit if the benchmark dies first.
 */
async function onPair<T>(
  makeOurs: () => ProcessCluster,
  makeEtcd: () => EtcdCluster | null,
  fn: (ours: ProcessCluster, etcd: EtcdCluster | null) => Promise<T>,
): Promise<T> {
  const ours = makeOurs();
  const unguard = guardCluster(ours);
  let etcd: EtcdCluster | null = null;
  try {
    etcd = makeEtcd(); // guards itself from here on
    // Both starts finish (or fail) before any teardown, so neither polls a side that is being torn down.
    const failed = (await Promise.allSettled([ours.start(), etcd?.start()])).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return await fn(ours, etcd);
  } finally {
    await Promise.all([ours.destroy(), etcd?.destroy()]);
    unguard();
  }
}

/** One case on both: ours on the node `pick` chooses, then etcd on the member it chooses. */
async function both(
  ours: ProcessCluster,
  etcd: EtcdCluster | null,
  pick: 'leader' | 'follower',
  o: (n: NodeProcess) => Promise<Measurement>,
  e: (m: EtcdMember) => Promise<Measurement>,
): Promise<Pair> {
  const leader = await settled(ours);
  const mine = await o(pick === 'leader' ? leader : ours.nodes.find((n) => n !== leader)!);
  if (!etcd) return { ours: mine };
  const eLeader = await etcd.settled();
  return { ours: mine, etcd: await e(pick === 'leader' ? eLeader : etcd.members.find((m) => m !== eLeader)!) };
}

/** `writers` put loops for `ms` on both, from the node `pick` chooses (keys `prefix`…). */
function writesOnBoth(ours: ProcessCluster, etcd: EtcdCluster | null, pick: 'leader' | 'follower', writers: number, ms: number, prefix: string): Promise<Pair> {
  return both(ours, etcd, pick, (n) => writeCase(n, writers, ms, prefix), (m) => etcdWriteCase(m, writers, ms, prefix));
}

export async function runCompare(opts: CompareOptions): Promise<CompareResult> {
  const binary = opts.withEtcd ? findEtcd() : null;
  const metrics: Record<string, Pair> = {};
  const put = recorder('cluster', metrics);
  const ms = opts.caseMs;

  await onPair(
    () => new ProcessCluster({ basePort: opts.basePort, secret: SECRET, dataParent: opts.dir }),
    () => etcdCluster(binary, opts.dir, opts.etcdPort),
    async (ours, etcd) => {
      let written = 0;
      const early = await stallCase(await settled(ours), ms, 0); // on an empty state, to compare with the one below
      written += Number(early.writes);
      // Connections, JIT, the first WAL segment and compactions; etcd's client channel.
      const warm = await writesOnBoth(ours, etcd, 'leader', 16, Math.min(1000, ms), 'warm-');
      written += Number(warm.ours.ops);
      for (const pick of ['leader', 'follower'] as const) {
        for (const writers of [1, 16, 64, 256]) {
          const pair = await writesOnBoth(ours, etcd, pick, writers, ms, `${pick === 'leader' ? 'w' : 'wf'}${writers}-`);
          written += Number(pair.ours.ops);
          put(pick === 'leader' ? `writes_c${writers}` : `writes_follower_c${writers}`, pair);
        }
      }
      // Keys both sides wrote in the 16-writer case.
      const keys = Array.from({ length: 1000 }, (_, i) => `w16-${i % 16}-${Math.floor(i / 16)}`);
      put('reads_c64', await both(ours, etcd, 'leader', (n) => readCase(n, 64, ms, keys), (m) => etcdReadCase(m, 64, ms, keys)));
      put('reads_follower_c64', await both(ours, etcd, 'follower', (n) => readCase(n, 64, ms, keys), (m) => etcdReadCase(m, 64, ms, keys)));
      put(
        'lock_rtt_ms',
        await both(ours, etcd, 'leader', (n) => lockCase(n, 1, ms, 'lock-', LOCK_TTL_MS), (m) => etcdLockCase(m, 1, ms, 'lock-', LOCK_TTL_MS / 1000)),
      );
      put(
        'lock_rtt_follower_ms',
        await both(ours, etcd, 'follower', (n) => lockCase(n, 1, ms, 'lockf-', LOCK_TTL_MS), (m) => etcdLockCase(m, 1, ms, 'lockf-', LOCK_TTL_MS / 1000)),
      );

      // Compaction snapshots the whole state every compactionThreshold entries: the stall grows with the state.
      put('writer_max_gap_small_state', { ours: early });
      put('writer_max_gap_large_state', { ours: await stallCase(await settled(ours), ms, written) });
    },
  );

  // Failover and graceful stop on a fresh pair: a small state, so snapshot stalls do not blur the handover.
  await onPair(
    () => new ProcessCluster({ basePort: opts.basePort + 10, secret: SECRET, dataParent: opts.dir }),
    () => etcdCluster(binary, opts.dir, opts.etcdPort),
    (f, g) => failoverAndGraceful(f, g, opts, put),
  );
  return { metrics, etcd: binary };
}

/** Failover rounds, then graceful-stop rounds, alternating ours and etcd. */
async function failoverAndGraceful(
  f: ProcessCluster,
  g: EtcdCluster | null,
  opts: CompareOptions,
  put: (metric: string, pair: Pair) => void,
): Promise<void> {
  const fo: { ours: FailoverRound[]; etcd: FailoverRound[] } = { ours: [], etcd: [] };
  for (let r = 0; r < opts.failoverRounds; r++) {
    const mine = await failoverRound(f, r);
    fo.ours.push(mine);
    emit('cluster', 'failover_round', { round: r, ms: round(mine.ms, 1), electedMs: round(mine.electedMs, 1), killed: mine.killed, firstCommitOn: mine.firstCommitOn });
    if (!g) continue;
    const theirs = await etcdFailoverRound(g, r);
    fo.etcd.push(theirs);
    emit('etcd', 'failover_round', { round: r, ms: round(theirs.ms, 1), electedMs: round(theirs.electedMs, 1), killed: theirs.killed, firstCommitOn: theirs.firstCommitOn });
  }
  const failover = (xs: readonly FailoverRound[], settings: Measurement): Measurement => ({
    ...rounds(xs.map((x) => x.ms)),
    electedMedianMs: round(percentile(xs.map((x) => x.electedMs), 0.5), 1),
    electedMs: xs.map((x) => round(x.electedMs, 1)),
    ...settings,
  });
  put('failover_ms', {
    ours: failover(fo.ours, { electionTimeoutMs: seed.electionTimeout, heartbeatMs: seed.heartbeatInterval }),
    ...(g && { etcd: failover(fo.etcd, { electionTimeoutMs: ETCD_ELECTION_MS, heartbeatMs: ETCD_HEARTBEAT_MS }) }),
  });

  const gs: { ours: GracefulRound[]; etcd: GracefulRound[] } = { ours: [], etcd: [] };
  const show = (x: GracefulRound, r: number): Measurement => ({
    round: r,
    pauseMs: round(x.pauseMs, 1),
    pauseFromMs: round(x.pauseFromMs, 1),
    pauseToMs: round(x.pauseToMs, 1),
    loadMaxGapMs: round(x.loadMaxGapMs, 1),
    baselineMaxGapMs: round(x.baselineMaxGapMs, 1),
    sigtermToExitMs: round(x.sigtermToExitMs, 1),
    errors: x.errors,
  });
  for (let r = 0; r < opts.gracefulRounds; r++) {
    const mine = await gracefulRound(f, r);
    gs.ours.push(mine);
    emit('cluster', 'graceful_round', show(mine, r));
    if (!g) continue;
    const theirs = await etcdGracefulRound(g, r);
    gs.etcd.push(theirs);
    emit('etcd', 'graceful_round', show(theirs, r));
  }
  const graceful = (xs: readonly GracefulRound[]): Measurement => ({
    ...rounds(xs.map((x) => x.pauseMs)),
    baselineMaxGapMedianMs: round(percentile(xs.map((x) => x.baselineMaxGapMs), 0.5), 1),
    loadMaxGapMedianMs: round(percentile(xs.map((x) => x.loadMaxGapMs), 0.5), 1),
    sigtermToExitMedianMs: round(percentile(xs.map((x) => x.sigtermToExitMs), 0.5), 1),
    errors: xs.reduce((n, x) => n + x.errors, 0),
  });
  put('graceful_pause_ms', { ours: graceful(gs.ours), ...(g && { etcd: graceful(gs.etcd) }) });
  await Promise.all([settled(f), g?.settled()]);
}

/** The same pair with `members` added to each side. */
function withMembers(pair: Pair, members: number): Pair {
  return { ours: { ...pair.ours, members }, ...(pair.etcd && { etcd: { ...pair.etcd, members } }) };
}

/** Five members a side: a warm-up, then writes on the leader at 1 and 64 writers (writes5_c1, writes5_c64). */
export async function runCompare5(opts: Compare5Options): Promise<CompareResult> {
  const members = 5;
  const binary = opts.withEtcd ? findEtcd() : null;
  const metrics: Record<string, Pair> = {};
  const put = recorder('cluster5', metrics);
  const ms = opts.caseMs;
  await onPair(
    () =>
      new ProcessCluster({ ids: Array.from({ length: members }, (_, i) => `n${i + 1}`), basePort: opts.basePort, secret: SECRET, dataParent: opts.dir }),
    () => etcdCluster(binary, opts.dir, opts.etcdPort, members),
    async (ours, etcd) => {
      // Connections, JIT, the first WAL segment; etcd's client channel.
      await writesOnBoth(ours, etcd, 'leader', 16, Math.min(1000, ms), 'warm-');
      for (const writers of [1, 64]) {
        put(`writes5_c${writers}`, withMembers(await writesOnBoth(ours, etcd, 'leader', writers, ms, `w${writers}-`), members));
      }
    },
  );
  return { metrics, etcd: binary };
}
