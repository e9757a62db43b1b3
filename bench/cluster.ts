/**
 * Cluster benchmark: three node processes on 127.0.0.1 (test/e2e/node-main, fsync on, seed defaults: election
 * timeout 150 ms, heartbeat 50 ms, compaction every 1000 entries), driven over IPC.
 *
 * - writes at 1, 16, 64, 256 concurrent writers inside the leader's process (`writeLoad`), and 16 inside a follower
 *   (each write forwarded to the leader);
 * - linearizable reads at 64 readers inside the leader's process (`readLoad`), and inside a follower;
 * - failover: kill -9 of the leader, time until a write commits on a survivor; the killed node restarts between rounds;
 * - graceful stop: SIGTERM to the leader (it hands leadership over), the longest pause a writer on a survivor sees.
 */
import * as fs from 'node:fs';
import type { WriteResult } from '../lib/cluster/cluster-store.js';
import { epochMs, type ReadLoadResult, type WriteLoadResult } from '../test/support/node-protocol.js';
import { ProcessCluster, assertBuilt, percentile, sleep, waitUntil, type NodeProcess } from '../test/support/process-cluster.js';

export interface ClusterBenchOptions {
  /** ms per throughput case. */
  readonly caseMs: number;
  readonly failoverRounds: number;
  readonly gracefulRounds: number;
  readonly basePort: number;
  /** Parent of the nodes' data dirs (the disk being measured). */
  readonly dir: string;
}

/** One measurement as printed and stored under its metric name. */
export type Measurement = Record<string, number | string | boolean | null>;

export interface ClusterBenchResult {
  readonly metrics: Record<string, Measurement>;
}

function round(x: number, digits = 3): number {
  return Number.isFinite(x) ? Number(x.toFixed(digits)) : x;
}

function throughput(latenciesUs: readonly number[], startedAt: number, endedAt: number, errors: number): Measurement {
  const seconds = (endedAt - startedAt) / 1000;
  return {
    ops: latenciesUs.length,
    seconds: round(seconds),
    opsPerSec: Math.round(latenciesUs.length / seconds),
    p50Ms: round(percentile(latenciesUs, 0.5) / 1000),
    p99Ms: round(percentile(latenciesUs, 0.99) / 1000),
    maxMs: round(percentile(latenciesUs, 1) / 1000),
    errors,
  };
}

function emit(metric: string, m: Measurement): void {
  process.stdout.write(`${JSON.stringify({ bench: 'cluster', metric, ...m })}\n`);
}

/** Until one node leads with a valid lease, every node names it, and every node has applied what it committed. */
async function settled(c: ProcessCluster, timeoutMs = 10_000): Promise<NodeProcess> {
  return waitUntil('a settled cluster', timeoutMs, async () => {
    const live = c.nodes.filter((n) => n.running);
    const all = await Promise.all(live.map((n) => n.status()));
    const leader = all.find((s) => s.isLeader && s.leaseValid);
    if (!leader || all.length !== c.nodes.length) return undefined;
    const agreed = all.every((s) => s.leaderId === leader.nodeId && s.appliedIndex >= leader.commitIndex);
    return agreed ? live[all.indexOf(leader)] : undefined;
  });
}

async function writeCase(node: NodeProcess, writers: number, ms: number, prefix: string): Promise<Measurement> {
  const r = await node.request<WriteLoadResult>({ op: 'writeLoad', writers, durationMs: ms, keyPrefix: prefix }, ms + 60_000);
  return { ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors), writers, ranOn: node.id };
}

async function readCase(node: NodeProcess, readers: number, ms: number, keys: readonly string[]): Promise<Measurement> {
  const r = await node.request<ReadLoadResult>({ op: 'readLoad', readers, durationMs: ms, keys, consistency: 'linearizable' }, ms + 60_000);
  return { ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors), readers, ranOn: node.id };
}

interface FailoverRound {
  /** ms from the SIGKILL until a write sent to the survivors after the process was gone committed on one of them. */
  readonly ms: number;
  /** ms from the SIGKILL until a survivor answered a status poll as leader with a valid lease. */
  readonly electedMs: number;
  readonly killed: string;
  readonly next: string;
}

/** kill -9 of the leader under light load; the killed node is restarted on its dataDir afterwards. */
async function failoverRound(c: ProcessCluster, round: number): Promise<FailoverRound> {
  const leader = await settled(c);
  const survivors = c.nodes.filter((n) => n !== leader);
  // Light background traffic, so the leader dies with replication in flight.
  const background = survivors.map((s) =>
    s.request<WriteLoadResult>({ op: 'writeLoad', writers: 2, durationMs: 600, keyPrefix: `fo${round}-bg-${s.id}-` }, 30_000).catch(() => null),
  );
  await sleep(200);
  const killAt = epochMs();
  await leader.signal('SIGKILL');
  let electedAt = Number.NaN;
  const elected = waitUntil(
    'a new leader',
    5000,
    async () => {
      const all = await Promise.all(survivors.map((s) => s.status()));
      if (!all.some((st) => st.isLeader && st.leaseValid)) return undefined;
      electedAt = epochMs();
      return true;
    },
    1,
  );
  const first = await Promise.any(
    survivors.map(async (s) => {
      await s.request<WriteResult>({ op: 'put', key: `fo${round}-probe-${s.id}`, value: round }, 10_000);
      return { at: epochMs(), node: s.id };
    }),
  );
  await elected.catch(() => undefined);
  await Promise.all(background);
  await leader.start();
  return { ms: first.at - killAt, electedMs: electedAt - killAt, killed: leader.id, next: first.node };
}

interface GracefulRound {
  /** The longest stretch without an ack that overlaps the handover (from the SIGTERM until the process exited). */
  readonly pauseMs: number;
  /** Where it began and ended, ms after the SIGTERM. */
  readonly pauseFromMs: number;
  readonly pauseToMs: number;
  /** The longest stretch without an ack anywhere in the 1.5 s load (compaction stalls included). */
  readonly loadMaxGapMs: number;
  /** The same for writers while nobody stops. */
  readonly baselineMaxGapMs: number;
  readonly sigtermToExitMs: number;
  readonly errors: number;
}

interface Gap {
  readonly gap: number;
  readonly from: number;
  readonly to: number;
}

/** Every stretch between consecutive acknowledgements of one writer (from the load's start to its end). */
function gaps(r: WriteLoadResult): Gap[] {
  const times = [r.startedAt, ...(r.endAt ?? []), r.endedAt];
  return times.slice(1).map((t, i) => ({ gap: t - times[i]!, from: times[i]!, to: t }));
}

function longest(gs: readonly Gap[]): Gap {
  return gs.reduce((a, b) => (b.gap > a.gap ? b : a), { gap: 0, from: 0, to: 0 });
}

/**
 * SIGTERM to the leader while one writer runs on each survivor: the longest time either went without an ack around
 * the handover. The leader's SIGTERM handler stops the node, which hands leadership to the most up-to-date follower
 * first. Pauses elsewhere in the load (a snapshot being taken, say) are reported apart.
 */
async function gracefulRound(c: ProcessCluster, round: number): Promise<GracefulRound> {
  const leader = await settled(c);
  const survivors = c.nodes.filter((n) => n !== leader);
  // Baseline: the same writers with nobody stopping, for the pause a writer sees anyway.
  const base = await Promise.all(
    survivors.map((s) => s.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: 600, keyPrefix: `gs${round}-base-${s.id}-`, detail: true }, 30_000)),
  );
  const loads = survivors.map((s) =>
    s.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: 1500, keyPrefix: `gs${round}-${s.id}-`, detail: true }, 30_000),
  );
  await sleep(500);
  const t0 = epochMs();
  await leader.signal('SIGTERM');
  const sigtermToExitMs = epochMs() - t0;
  const results = await Promise.all(loads);
  await leader.start();
  const all = results.flatMap(gaps);
  const handover = longest(all.filter((g) => g.to >= t0 && g.from <= t0 + sigtermToExitMs));
  return {
    pauseMs: handover.gap,
    pauseFromMs: handover.from - t0,
    pauseToMs: handover.to - t0,
    loadMaxGapMs: longest(all).gap,
    baselineMaxGapMs: longest(base.flatMap(gaps)).gap,
    sigtermToExitMs,
    errors: results.reduce((n, r) => n + r.errors, 0),
  };
}

function stats(xs: readonly number[]): Measurement {
  return {
    rounds: xs.length,
    medianMs: round(percentile(xs, 0.5), 1),
    maxMs: round(Math.max(...xs), 1),
    minMs: round(Math.min(...xs), 1),
    allMs: xs.map((x) => Math.round(x)).join(' '),
  };
}

/** One writer on the leader for `ms`, with a state of `keys` keys: its longest stretch without an ack. */
async function stallCase(leader: NodeProcess, ms: number, keys: number): Promise<Measurement> {
  const r = await leader.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: ms, keyPrefix: `stall-${keys}-`, detail: true }, ms + 60_000);
  const st = await leader.status();
  return {
    keysBefore: keys,
    writes: r.latencies.length,
    p50Ms: round(percentile(r.latencies, 0.5) / 1000),
    maxGapMs: round(longest(gaps(r)).gap, 1),
    gapsOver50Ms: gaps(r).filter((g) => g.gap > 50).length,
    snapshotIndex: st.snapshotIndex,
    ranOn: leader.id,
  };
}

export async function runClusterBench(opts: ClusterBenchOptions): Promise<ClusterBenchResult> {
  assertBuilt();
  const metrics: Record<string, Measurement> = {};
  const put = (metric: string, m: Measurement): void => {
    metrics[metric] = m;
    emit(metric, m);
  };
  fs.mkdirSync(opts.dir, { recursive: true });
  const secret = 'bench-secret-0123456789';

  // Throughput and reads. The state grows to tens of thousands of keys along the way, as it would in an app.
  const c = new ProcessCluster({ basePort: opts.basePort, secret, dataParent: opts.dir });
  try {
    await c.start();
    let leader = await settled(c);
    let written = 0;
    const early = await stallCase(leader, opts.caseMs, 0); // on an empty state, to compare with the one below
    written += Number(early.writes);
    await writeCase(leader, 16, Math.min(1000, opts.caseMs), 'warm-'); // connections, JIT, first segment
    for (const writers of [1, 16, 64, 256]) {
      leader = await settled(c);
      const m = await writeCase(leader, writers, opts.caseMs, `w${writers}-`);
      written += Number(m.ops);
      put(`writes_c${writers}`, m);
    }
    leader = await settled(c);
    const follower = c.nodes.find((n) => n !== leader)!;
    const wf = await writeCase(follower, 16, opts.caseMs, 'wf16-');
    written += Number(wf.ops);
    put('writes_follower_c16', wf);

    const keys = Array.from({ length: 1000 }, (_, i) => `w16-${i % 16}-${Math.floor(i / 16)}`);
    leader = await settled(c);
    put('reads_c64', await readCase(leader, 64, opts.caseMs, keys));
    put('reads_follower_c64', await readCase(c.nodes.find((n) => n !== leader)!, 64, opts.caseMs, keys));

    // Compaction takes a snapshot of the whole state every compactionThreshold entries: the stall grows with it.
    leader = await settled(c);
    put('writer_max_gap_small_state', early);
    put('writer_max_gap_large_state', await stallCase(leader, opts.caseMs, written));
  } finally {
    await c.destroy();
  }

  // Failover and graceful stop on a fresh cluster: a small state, so snapshot stalls do not blur the handover.
  const f = new ProcessCluster({ basePort: opts.basePort + 10, secret, dataParent: opts.dir });
  try {
    await f.start();
    const failovers: number[] = [];
    const elections: number[] = [];
    for (let r = 0; r < opts.failoverRounds; r++) {
      const x = await failoverRound(f, r);
      failovers.push(x.ms);
      elections.push(x.electedMs);
      emit('failover_round', { round: r, ms: round(x.ms, 1), electedMs: round(x.electedMs, 1), killed: x.killed, firstCommitOn: x.next });
    }
    put('failover_ms', stats(failovers));
    put('failover_election_ms', stats(elections));

    const pauses: number[] = [];
    const baselines: number[] = [];
    const loadGaps: number[] = [];
    for (let r = 0; r < opts.gracefulRounds; r++) {
      const g = await gracefulRound(f, r);
      pauses.push(g.pauseMs);
      baselines.push(g.baselineMaxGapMs);
      loadGaps.push(g.loadMaxGapMs);
      emit('graceful_round', {
        round: r,
        pauseMs: round(g.pauseMs, 1),
        pauseFromMs: round(g.pauseFromMs, 1),
        pauseToMs: round(g.pauseToMs, 1),
        loadMaxGapMs: round(g.loadMaxGapMs, 1),
        baselineMaxGapMs: round(g.baselineMaxGapMs, 1),
        sigtermToExitMs: round(g.sigtermToExitMs, 1),
        errors: g.errors,
      });
    }
    put('graceful_pause_ms', {
      ...stats(pauses),
      baselineMaxGapMedianMs: round(percentile(baselines, 0.5), 1),
      loadMaxGapMedianMs: round(percentile(loadGaps, 0.5), 1),
    });
    await settled(f);
  } finally {
    await f.destroy();
  }
  return { metrics };
}
