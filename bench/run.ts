/**
 * Benchmarks: `npm run bench -- [storage] [cluster] [forward] [--quick] [--dir /path/on/the/disk] [--seconds S]
 * [--port P]` (the cluster uses ports P..P+2 and P+10..P+12 on 127.0.0.1, default 18900; `--seconds` is per case, for
 * the storage and cluster benchmarks alike).
 *
 * With no name, runs all. Prints one JSON line per measurement, then a table, and merges the metrics into
 * bench/results/latest.json as `{ [metric]: { ours: {...} } }` (room for `etcd` and `ratio` next to `ours`).
 * `--quick` shortens every case (the whole run stays under two minutes). Never part of `npm test`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runClusterBench, type Measurement } from './cluster.js';
import { runForwardBench } from './forward.js';
import { runStorageBench, storageOptionsFromArgs, type CaseResult } from './storage.js';

const BENCHES = ['storage', 'cluster', 'forward'] as const;
type BenchName = (typeof BENCHES)[number];
/** Flags followed by a value (the storage ones are read by bench/storage.ts). */
const VALUE_FLAGS = new Set(['--dir', '--seconds', '--port', '--max', '--rounds', '--durability', '--io']);

/** One metric in latest.json. `etcd` and `ratio` are filled in by the comparison run (a later issue). */
interface MetricEntry {
  ours: Record<string, unknown>;
  etcd?: Record<string, unknown>;
  ratio?: Record<string, unknown>;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The repository root: the nearest directory above this file with a package.json. */
function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}

function storageMetrics(results: readonly CaseResult[]): Record<string, Measurement> {
  const name = { storage: 'storage', floor: 'storage_floor', asyncFloor: 'storage_async_floor' } as const;
  const out: Record<string, Measurement> = {};
  for (const r of results) {
    out[`${name[r.case]}_b${r.batch}`] = {
      batch: r.batch,
      batches: r.batches,
      entriesPerSec: r.entriesPerSec,
      p50Us: r.p50Us,
      p99Us: r.p99Us,
      bytesPerBatch: r.bytesPerBatch,
    };
  }
  return out;
}

function cell(m: Measurement, key: string, digits = 2): string {
  const v = m[key];
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return v === undefined || v === null ? '' : String(v);
}

function table(metrics: Record<string, Measurement>): string {
  const rows: string[][] = [['metric', 'ops/s', 'p50', 'p99', 'max', 'notes']];
  for (const [metric, m] of Object.entries(metrics)) {
    if (typeof m.opsPerSec === 'number') {
      rows.push([metric, cell(m, 'opsPerSec'), `${cell(m, 'p50Ms', 3)} ms`, `${cell(m, 'p99Ms', 3)} ms`, `${cell(m, 'maxMs', 1)} ms`, `${cell(m, 'ops')} ops, ${cell(m, 'errors')} errors`]);
    } else if (typeof m.entriesPerSec === 'number') {
      rows.push([metric, `${cell(m, 'entriesPerSec')} entries`, `${cell(m, 'p50Us')} µs`, `${cell(m, 'p99Us')} µs`, '', `batch ${cell(m, 'batch')}`]);
    } else if (typeof m.maxGapMs === 'number') {
      rows.push([metric, '', `${cell(m, 'p50Ms', 3)} ms`, '', `gap ${cell(m, 'maxGapMs', 1)} ms`, `1 writer, ${cell(m, 'keysBefore')} keys before, ${cell(m, 'gapsOver50Ms')} gaps > 50 ms`]);
    } else if (typeof m.medianMs === 'number') {
      const extra =
        typeof m.baselineMaxGapMedianMs === 'number'
          ? `; longest writer gap: without a stop ${cell(m, 'baselineMaxGapMedianMs', 1)} ms, anywhere in the load ${cell(m, 'loadMaxGapMedianMs', 1)} ms (medians)`
          : '';
      rows.push([metric, '', `median ${cell(m, 'medianMs', 1)} ms`, '', `${cell(m, 'maxMs', 1)} ms`, `${cell(m, 'rounds')} rounds: ${cell(m, 'allMs')}${extra}`]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const args = process.argv.slice(2);
  const named = args.filter((a, i) => !a.startsWith('--') && !VALUE_FLAGS.has(args[i - 1] ?? ''));
  const unknown = named.filter((n) => !(BENCHES as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; expected one of ${BENCHES.join(', ')}`);
  const which: BenchName[] = named.length === 0 ? [...BENCHES] : BENCHES.filter((b) => named.includes(b));
  const dir = flag('dir') ?? os.tmpdir();
  const started = Date.now();
  const loadAtStart = os.loadavg().map((l) => Number(l.toFixed(2)));
  if (loadAtStart[0]! > 0.5) {
    process.stderr.write(`note: load average ${loadAtStart.join(' ')} at start: other processes compete for ${os.cpus().length} CPUs and will show in the numbers\n`);
  }
  const metrics: Record<string, Measurement> = {};
  /** Metrics whose `ours` is not a flat measurement (the forward benchmark's). */
  const nested: Record<string, Record<string, unknown>> = {};

  if (which.includes('storage')) {
    const summary = await runStorageBench({ ...storageOptionsFromArgs(quick), dir });
    Object.assign(metrics, storageMetrics(summary.results));
  }
  if (which.includes('cluster')) {
    const secondsArg = flag('seconds');
    const caseMs = secondsArg ? Number(secondsArg) * 1000 : quick ? 1000 : 3000;
    const r = await runClusterBench({
      caseMs,
      failoverRounds: quick ? 4 : 12,
      gracefulRounds: quick ? 2 : 5,
      basePort: Number(flag('port') ?? 18900),
      dir,
    });
    Object.assign(metrics, r.metrics);
  }
  if (which.includes('forward')) {
    for (const [metric, entry] of Object.entries(await runForwardBench(quick))) {
      if (!isRecord(entry) || !isRecord(entry.ours)) continue;
      nested[metric] = entry.ours;
      process.stdout.write(`${JSON.stringify({ bench: 'forward', metric, ...entry.ours })}\n`);
    }
  }

  const meta: Measurement = {
    measuredAt: new Date().toISOString(),
    quick,
    nodeVersion: process.version,
    cpus: os.cpus().length,
    memGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    loadAverageAtStart: loadAtStart.join(' '),
  };
  const file = path.join(repoRoot(), 'bench', 'results', 'latest.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const previous = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, MetricEntry>) : {};
  for (const [metric, m] of Object.entries({ ...metrics, ...nested })) previous[metric] = { ...previous[metric], ours: { ...m, ...meta } };
  fs.writeFileSync(file, `${JSON.stringify(previous, null, 2)}\n`);

  if (Object.keys(metrics).length > 0) process.stdout.write(`\n${table(metrics)}\n`);
  for (const [metric, m] of Object.entries(nested)) process.stdout.write(`${metric}  ${JSON.stringify(m)}\n`);
  process.stdout.write('\n');
  process.stdout.write(`${which.join(' + ')}${quick ? ' (quick)' : ''} in ${((Date.now() - started) / 1000).toFixed(1)} s; wrote ${path.relative(process.cwd(), file)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
