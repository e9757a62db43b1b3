/**
 * Memory across many writes: a fresh 3-node cluster (default compactionThreshold, so the log is compacted every 10 000
 * entries), writers inside the leader, RSS and heap of every node process sampled all along. Start and end are taken
 * after a full GC (the nodes run with --expose-gc), the peak from the samples in between.
 *
 * The writes cycle over one working set of keys (every chunk rewrites the keys of the first), and the start is taken
 * once that set exists and RSS has settled (see warmUp): what grows then is not the application's data, nor the
 * processes sizing themselves to the load, but what the cluster keeps besides it.
 */
import { resolveClusterOptions } from '../lib/testing.js';
import type { MemoryResult, WriteLoadResult } from '../test/support/node-protocol.js';
import { ProcessCluster, sleep, type NodeProcess } from '../test/support/process-cluster.js';
import { guardCluster } from './cleanup.js';
import { settled } from './cluster.js';
import { round, type Measurement } from './measure.js';

export interface MemoryBenchOptions {
  readonly writes: number;
  readonly writers: number;
  readonly basePort: number;
  readonly dir: string;
  readonly quick: boolean;
}

const MB = 2 ** 20;
/** Writes per writeLoad request: its reply (keys and latencies) stays small next to what is measured. */
const CHUNK = 20_000;
const SAMPLE_EVERY_MS = 250;
/** Every chunk writes `${KEYS}${writer}-${i}` for i from 0: about CHUNK keys in all. */
const KEYS = 'm-';

function memory(n: NodeProcess, gc: boolean): Promise<MemoryResult> {
  return n.request<MemoryResult>({ op: 'memory', gc }, 10_000);
}

/**
 * The warm-up: the working set, connections, JIT and the first compactions, and then the processes' own sizing to
 * the load (V8's young generation and the allocator's arenas grow with the allocation rate, over the first 40 000 to
 * 60 000 writes here). Chunks of writes until every node's RSS after a full GC moved less than SETTLED_MB over the
 * last chunk, at least WARMUP_MIN writes and at most WARMUP_MAX. What the measurement then sees growing is what the
 * cluster accumulates per write; the growth from the first chunk on is reported beside it.
 */
const WARMUP_MIN = 60_000;
const WARMUP_MAX = 200_000;
const SETTLED_MB = 3;

async function warmUp(c: ProcessCluster, writers: number): Promise<{ writes: number; first: MemoryResult[]; last: MemoryResult[]; rss: number[] }> {
  let writes = 0;
  let first: MemoryResult[] | null = null;
  let last: MemoryResult[] | null = null;
  const rss: number[] = [];
  for (;;) {
    const leader = await settled(c, 30_000);
    const r = await leader.request<WriteLoadResult>({ op: 'writeLoad', writers, durationMs: 600_000, maxWrites: CHUNK, keyPrefix: KEYS }, 660_000);
    if (r.latencies.length === 0) throw new Error(`no write was acknowledged during the warm-up: ${JSON.stringify(r.errorNames)}`);
    writes += r.latencies.length;
    await settled(c, 30_000); // the followers have applied the chunk
    const now = await Promise.all(c.nodes.map((n) => memory(n, true)));
    rss.push(Math.max(...now.map((m) => m.rss)));
    const moved = last === null ? Infinity : Math.max(...now.map((m, i) => Math.abs(m.rss - last![i]!.rss)));
    first ??= now;
    last = now;
    if (writes >= WARMUP_MAX || (writes >= WARMUP_MIN && moved < SETTLED_MB * MB)) return { writes, first, last, rss };
  }
}

export async function runMemoryBench(opts: MemoryBenchOptions): Promise<Measurement> {
  const c = new ProcessCluster({ basePort: opts.basePort, secret: 'bench-secret-0123456789', dataParent: opts.dir, env: { NODE_OPTIONS: '--expose-gc' } });
  const unguard = guardCluster(c);
  try {
    await c.start();
    let leader = await settled(c);
    const warm = await warmUp(c, opts.writers);
    const start = warm.last;
    const peakRss = start.map((m) => m.rss);
    const peakHeap = start.map((m) => m.heapUsed);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = await Promise.all(c.nodes.map((n) => memory(n, false)));
        now.forEach((m, i) => {
          peakRss[i] = Math.max(peakRss[i]!, m.rss);
          peakHeap[i] = Math.max(peakHeap[i]!, m.heapUsed);
        });
        await sleep(SAMPLE_EVERY_MS);
      }
    })();
    const t0 = performance.now();
    let written = 0;
    let errors = 0;
    /** After each chunk: writes so far, the largest RSS and heap used among the nodes (no GC first). */
    const series: { writes: number; rss: number; heap: number }[] = [];
    try {
      for (let chunk = 0; written < opts.writes; chunk++) {
        leader = await settled(c, 30_000);
        const r = await leader.request<WriteLoadResult>(
          { op: 'writeLoad', writers: opts.writers, durationMs: 600_000, maxWrites: Math.min(CHUNK, opts.writes - written), keyPrefix: KEYS },
          660_000,
        );
        written += r.latencies.length;
        errors += r.errors;
        if (r.latencies.length === 0) throw new Error(`no write was acknowledged in chunk ${chunk}: ${JSON.stringify(r.errorNames)}`);
        const now = await Promise.all(c.nodes.map((n) => memory(n, false)));
        series.push({ writes: written, rss: Math.max(...now.map((m) => m.rss)), heap: Math.max(...now.map((m) => m.heapUsed)) });
      }
    } finally {
      sampling = false;
      await sampler;
    }
    const seconds = (performance.now() - t0) / 1000;
    leader = await settled(c); // the followers have applied everything
    const end = await Promise.all(c.nodes.map((n) => memory(n, true)));
    const st = await leader.status();
    const mb = (xs: readonly number[]) => xs.map((x) => round(x / MB, 1));
    const growth = end.map((m, i) => m.rss - start[i]!.rss);
    const growthSinceFirst = end.map((m, i) => m.rss - warm.first[i]!.rss);
    const peakGrowth = peakRss.map((p, i) => p - start[i]!.rss);
    return {
      writes: written,
      quick: opts.quick,
      writers: opts.writers,
      seconds: round(seconds, 1),
      writesPerSec: Math.round(written / seconds),
      errors,
      compactionThreshold: resolveClusterOptions({ nodeId: 'bench' }).compactionThreshold,
      snapshotIndex: st.snapshotIndex,
      nodes: c.nodes.map((n) => n.id).join(' '),
      leader: leader.id,
      growthMb: round(Math.max(...growth) / MB, 1),
      peakGrowthMb: round(Math.max(...peakGrowth) / MB, 1),
      warmupWrites: warm.writes,
      rssAfterFirstChunkMb: mb(warm.first.map((m) => m.rss)),
      growthSinceFirstChunkMb: round(Math.max(...growthSinceFirst) / MB, 1),
      warmupRssMaxMb: mb(warm.rss),
      rssStartMb: mb(start.map((m) => m.rss)),
      rssPeakMb: mb(peakRss),
      rssEndMb: mb(end.map((m) => m.rss)),
      heapStartMb: mb(start.map((m) => m.heapUsed)),
      heapPeakMb: mb(peakHeap),
      heapEndMb: mb(end.map((m) => m.heapUsed)),
      heapTotalStartMb: mb(start.map((m) => m.heapTotal)),
      heapTotalEndMb: mb(end.map((m) => m.heapTotal)),
      externalStartMb: mb(start.map((m) => m.external)),
      externalEndMb: mb(end.map((m) => m.external)),
      keys: CHUNK,
      seriesWrites: series.map((x) => x.writes),
      seriesRssMaxMb: mb(series.map((x) => x.rss)),
      seriesHeapMaxMb: mb(series.map((x) => x.heap)),
      gcRan: start.every((m) => m.gcRan) && end.every((m) => m.gcRan),
    };
  } finally {
    await c.destroy();
    unguard();
  }
}
