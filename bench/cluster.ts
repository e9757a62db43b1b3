/**
 * Our side of each comparison: three node processes on 127.0.0.1 (test/e2e/node-main, fsync on, seed defaults:
 * election timeout 150 ms, heartbeat 50 ms, compaction every 10 000 entries), driven over IPC. The load runs inside the
 * node processes, as an application's code would.
 */
import type { WriteResult } from '../lib/index.js';
import { epochMs, type LockLoadResult, type ReadLoadResult, type WriteLoadResult } from '../test/support/node-protocol.js';
import { ProcessCluster, sleep, waitUntil, type NodeProcess } from '../test/support/process-cluster.js';
import { gapsOf, longest, percentile, round, throughput, type Measurement } from './measure.js';
import { firstCommit, gracefulPause, type FailoverRound, type GracefulRound, type WriterTrace } from './rounds.js';

/** Until one node leads with a valid lease, every node names it, and every node has applied what it committed. */
export async function settled(c: ProcessCluster, timeoutMs = 10_000): Promise<NodeProcess> {
  return waitUntil('a settled cluster', timeoutMs, async () => {
    const live = c.nodes.filter((n) => n.running);
    const all = await Promise.all(live.map((n) => n.status()));
    const leader = all.find((s) => s.isLeader && s.leaseValid);
    if (!leader || all.length !== c.nodes.length) return undefined;
    const agreed = all.every((s) => s.leaderId === leader.nodeId && s.appliedIndex >= leader.commitIndex);
    return agreed ? live[all.indexOf(leader)] : undefined;
  });
}

export async function writeCase(node: NodeProcess, writers: number, ms: number, prefix: string): Promise<Measurement> {
  const r = await node.request<WriteLoadResult>({ op: 'writeLoad', writers, durationMs: ms, keyPrefix: prefix }, ms + 60_000);
  return { ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors), writers, ranOn: node.id };
}

export async function readCase(node: NodeProcess, readers: number, ms: number, keys: readonly string[]): Promise<Measurement> {
  const r = await node.request<ReadLoadResult>({ op: 'readLoad', readers, durationMs: ms, keys, consistency: 'linearizable' }, ms + 60_000);
  return { ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors), readers, ranOn: node.id };
}

/** `workers` loops of `locks.acquire(name, { ttl })` then `release()`, one lock name per worker. */
export async function lockCase(node: NodeProcess, workers: number, ms: number, prefix: string, ttlMs: number): Promise<Measurement> {
  const r = await node.request<LockLoadResult>({ op: 'lockLoad', workers, durationMs: ms, namePrefix: prefix, ttl: ttlMs }, ms + 60_000);
  return {
    ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors),
    acquireP50Ms: round(percentile(r.acquireLatencies, 0.5) / 1000),
    workers,
    ranOn: node.id,
  };
}

/**
 * kill -9 of the leader under light load; a fresh put every few ms on each survivor until one is acknowledged. The
 * killed node is restarted on its dataDir afterwards.
 */
export async function failoverRound(c: ProcessCluster, round: number): Promise<FailoverRound> {
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
    10_000,
    async () => {
      const all = await Promise.all(survivors.map((s) => s.status()));
      if (!all.some((st) => st.isLeader && st.leaseValid)) return undefined;
      electedAt = epochMs();
      return true;
    },
    1,
  );
  const first = await firstCommit(survivors, 10_000, (s, n) => s.request<WriteResult>({ op: 'put', key: `fo${round}-probe-${s.id}-${n}`, value: n }, 10_000));
  await elected.catch(() => undefined);
  await Promise.all(background);
  await leader.start();
  return { ms: first.at - killAt, electedMs: electedAt - killAt, killed: leader.id, firstCommitOn: first.target.id };
}

function trace(r: WriteLoadResult): WriterTrace {
  return { startedAt: r.startedAt, endedAt: r.endedAt, ackAt: r.endAt ?? [] };
}

/**
 * SIGTERM to the leader while one writer runs on each survivor: the longest time either went without an ack around
 * the handover. The leader's SIGTERM handler stops the node, which hands leadership to the most up-to-date follower
 * first. Pauses elsewhere in the load (a snapshot being taken, say) are reported apart.
 */
export async function gracefulRound(c: ProcessCluster, round: number): Promise<GracefulRound> {
  const leader = await settled(c);
  const survivors = c.nodes.filter((n) => n !== leader);
  const writer = (s: NodeProcess, ms: number, prefix: string) =>
    s.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: ms, keyPrefix: `${prefix}${s.id}-`, detail: true }, 30_000);
  // Baseline: the same writers with nobody stopping, for the pause a writer sees anyway.
  const base = await Promise.all(survivors.map((s) => writer(s, 600, `gs${round}-base-`)));
  const loads = survivors.map((s) => writer(s, 1500, `gs${round}-`));
  await sleep(500);
  const t0 = epochMs();
  await leader.signal('SIGTERM');
  const sigtermToExitMs = epochMs() - t0;
  const results = await Promise.all(loads);
  await leader.start();
  return gracefulPause(
    results.map(trace),
    base.map(trace),
    t0,
    sigtermToExitMs,
    results.reduce((n, r) => n + r.errors, 0),
  );
}

/** One writer on the leader for `ms`, with a state of `keys` keys: its longest stretch without an ack. */
export async function stallCase(leader: NodeProcess, ms: number, keys: number): Promise<Measurement> {
  const before = (await leader.status()).snapshotIndex;
  const load = leader.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: ms, keyPrefix: `stall-${keys}-`, detail: true }, ms + 60_000);
  // A snapshot of the whole state in the window, whatever the thresholds: the stall it causes is what is measured.
  await new Promise((r) => setTimeout(r, ms / 3));
  await leader.request<boolean>({ op: 'snapshotNow' }); // false when one is already under way: that one counts
  const r = await load;
  const st = await leader.status();
  if (st.snapshotIndex <= before) throw new Error(`stall case: no snapshot was taken in the window (snapshot index ${before} → ${st.snapshotIndex})`);
  const gaps = gapsOf(r.startedAt, r.endAt ?? [], r.endedAt);
  return {
    keysBefore: keys,
    writes: r.latencies.length,
    p50Ms: round(percentile(r.latencies, 0.5) / 1000),
    maxGapMs: round(longest(gaps).gap, 1),
    gapsOver50Ms: gaps.filter((g) => g.gap > 50).length,
    snapshotIndex: st.snapshotIndex,
    ranOn: leader.id,
  };
}
