/**
 * Benchmarks: `npm run bench -- [storage] [cluster] [cluster5] [forward] [memory] [events] [backends] [options]`; with
 * no name, all of them. cluster5: writes on the leader at 1 and 64 writers with five members a side. backends: the
 * embedded backend against the etcd backend (three app nodes each, the etcd side on a 3-member etcd): forward, lock,
 * event fan-out and failover latencies, on free ports, the etcd's data under the system temp dir whatever --dir says.
 *
 *   --quick              every case shortened (the whole run stays under three minutes)
 *   --no-etcd            ours only (cluster, cluster5, events): no etcd is started
 *   --dir PATH           parent of every data dir, ours and etcd's (default: the system temp dir)
 *   --seconds S          per throughput case, for storage, cluster and cluster5 (default 3, quick 1)
 *   --failover-rounds N  kill -9 rounds per side (default 12, quick 4); --graceful-rounds N (default 6, quick 2)
 *   --writes N           memory: writes into the cluster (default 1 000 000, quick 50 000)
 *   --port P             ours on 127.0.0.1 ports P..P+2 (throughput), P+10.. (failover), P+20.. (memory),
 *                        P+30.. and P+55.. (events: fan-out without and with Nest), P+50.. (events: singleton hand-off), P+80..P+84 (cluster5);
 *                        default 18900
 *   --handoff-rounds N   events: kill -9 rounds of the singleton hand-off (default 7, quick 3)
 *   --backend-rounds N   backends: kill -9 rounds per backend (default 5, quick 2); --no-etcd: the embedded side only
 *   --etcd-port P        etcd client ports P..P+2, peer ports P+10..P+12; cluster5's 5 members: clients P+40..P+44,
 *                        peers P+50..P+54; default 18960
 *   --report-only        measure nothing: redraw the charts and the docs region from bench/results/latest.json
 *   (bench/storage.ts reads its own: --max, --rounds, --durability, --io)
 *
 * Prints one JSON line per measurement, then a table with ours / etcd ratios and the targets (backends: a table of its
 * own, embedded vs etcd backend, with embedded / etcd-backend ratios). Merges the metrics into
 * bench/results/latest.json, redraws docs/bench/*.svg and rewrites the generated region of docs/benchmarks.md.
 * Never part of `npm test`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKEND_ETCD_ELECTION_MS, BACKEND_ETCD_HEARTBEAT_MS, runBackendsBench } from './backends.js';
import { writeCharts } from './charts.js';
import { ETCD_ELECTION_MS, ETCD_HEARTBEAT_MS, runCompare, runCompare5, type Pair } from './compare.js';
import { runEventsBench } from './events.js';
import { runForwardBench } from './forward.js';
import { emit, type Measurement } from './measure.js';
import { runMemoryBench } from './memory.js';
import { BACKENDS_SIDES, consoleTable, updateDocs } from './report.js';
import { mergeResults, readResults, writeResults, type Results } from './results.js';
import { runStorageBench, storageOptionsFromArgs, type CaseResult } from './storage.js';

const BENCHES = ['storage', 'cluster', 'cluster5', 'forward', 'memory', 'events', 'backends'] as const;
type BenchName = (typeof BENCHES)[number];
/** Flags followed by a value (the storage ones are read by bench/storage.ts). */
const VALUE_FLAGS = new Set([
  '--dir',
  '--seconds',
  '--port',
  '--etcd-port',
  '--failover-rounds',
  '--graceful-rounds',
  '--writes',
  '--handoff-rounds',
  '--backend-rounds',
  '--max',
  '--rounds',
  '--durability',
  '--io',
]);
const BARE_FLAGS = new Set(['--quick', '--no-etcd', '--report-only']);

/** Bad command-line input: reported by its message alone. */
class UsageError extends Error {}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A positive number flag, or `fallback`; anything else is a clear error. */
function numberFlag(name: string, fallback: number): number {
  const raw = flag(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} expects a positive number, got ${JSON.stringify(raw)}`);
  return n;
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

function storagePairs(results: readonly CaseResult[]): Record<string, Pair> {
  const name = { storage: 'storage', floor: 'storage_floor', asyncFloor: 'storage_async_floor' } as const;
  const out: Record<string, Pair> = {};
  for (const r of results) {
    out[`${name[r.case]}_b${r.batch}`] = {
      ours: { batch: r.batch, batches: r.batches, entriesPerSec: r.entriesPerSec, p50Us: r.p50Us, p99Us: r.p99Us, bytesPerBatch: r.bytesPerBatch },
    };
  }
  return out;
}

function parseArgs(): { which: BenchName[]; quick: boolean } {
  const args = process.argv.slice(2);
  for (const [i, a] of args.entries()) {
    if (a.startsWith('--') && !VALUE_FLAGS.has(a) && !BARE_FLAGS.has(a)) {
      throw new UsageError(`unknown option ${a}; see the header of bench/run.ts`);
    }
    if (VALUE_FLAGS.has(a) && (args[i + 1] === undefined || args[i + 1]!.startsWith('--'))) throw new UsageError(`${a} expects a value`);
  }
  const named = args.filter((a, i) => !a.startsWith('--') && !VALUE_FLAGS.has(args[i - 1] ?? ''));
  const unknown = named.filter((n) => !(BENCHES as readonly string[]).includes(n));
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.join(', ')}; expected one of ${BENCHES.join(', ')}`);
  return { which: named.length === 0 ? [...BENCHES] : BENCHES.filter((b) => named.includes(b)), quick: args.includes('--quick') };
}

async function main(): Promise<void> {
  const { which, quick } = parseArgs();
  const root = repoRoot();
  const file = path.join(root, 'bench', 'results', 'latest.json');
  const render = (results: Results): void => {
    writeCharts(path.join(root, 'docs', 'bench'), results);
    updateDocs(path.join(root, 'docs', 'benchmarks.md'), results);
  };
  if (process.argv.includes('--report-only')) {
    render(readResults(file));
    process.stdout.write('redrew docs/bench/*.svg and the results in docs/benchmarks.md from bench/results/latest.json\n');
    return;
  }
  const dir = flag('dir') ?? os.tmpdir();
  if (!fs.existsSync(dir)) throw new UsageError(`--dir ${dir} does not exist`);
  const basePort = numberFlag('port', 18900);
  const etcdPort = numberFlag('etcd-port', 18960);
  const withEtcd = !process.argv.includes('--no-etcd');
  const caseMs = numberFlag('seconds', quick ? 1 : 3) * 1000;
  const opts = {
    caseMs,
    failoverRounds: numberFlag('failover-rounds', quick ? 4 : 12),
    gracefulRounds: numberFlag('graceful-rounds', quick ? 2 : 6),
    writes: numberFlag('writes', quick ? 50_000 : 1_000_000),
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping every node and etcd process, removing their data dirs\n`);
      process.exit(130);
    });
  }
  const started = Date.now();
  const loadAtStart = os.loadavg().map((l) => Number(l.toFixed(2)));
  if (loadAtStart[0]! > 0.5) {
    process.stderr.write(`note: load average ${loadAtStart.join(' ')} at start: other processes compete for ${os.cpus().length} CPUs and will show in the numbers\n`);
  }
  const fresh: Record<string, Pair> = {};
  let etcdVersion: string | null = null;
  /** Runs one benchmark and says how long it took (stderr, apart from the JSON lines). */
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const r = await fn();
    process.stderr.write(`# ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
    return r;
  };

  if (which.includes('storage')) {
    const summary = await timed('storage', () => runStorageBench({ ...storageOptionsFromArgs(quick), dir }));
    Object.assign(fresh, storagePairs(summary.results));
  }
  if (which.includes('cluster')) {
    const r = await timed('cluster', () => runCompare({ ...opts, basePort, etcdPort, dir, withEtcd }));
    Object.assign(fresh, r.metrics);
    etcdVersion = r.etcd?.version ?? null;
  }
  if (which.includes('cluster5')) {
    const r = await timed('cluster5', () => runCompare5({ caseMs, basePort: basePort + 80, etcdPort: etcdPort + 40, dir, withEtcd }));
    Object.assign(fresh, r.metrics);
    etcdVersion = r.etcd?.version ?? etcdVersion;
  }
  if (which.includes('forward')) {
    const m = await timed('forward', () => runForwardBench(quick));
    emit('forward', 'forward_added_ms', m);
    fresh.forward_added_ms = { ours: m };
  }
  if (which.includes('memory')) {
    const m = await timed('memory', () => runMemoryBench({ writes: opts.writes, writers: 64, basePort: basePort + 20, dir, quick }));
    emit('memory', 'rss_growth_mb', m);
    fresh.rss_growth_mb = { ours: m };
  }

  if (which.includes('events')) {
    const r = await timed('events', () =>
      runEventsBench({
        quick,
        basePort: basePort + 30,
        etcdPort,
        dir,
        withEtcd,
        handoffRounds: numberFlag('handoff-rounds', quick ? 3 : 7),
      }),
    );
    Object.assign(fresh, r.metrics);
    etcdVersion = r.etcd?.version ?? etcdVersion;
  }
  /** Kept apart from `fresh`: their etcd side is the etcd backend on startEtcd's etcd, with metadata of its own. */
  let backends: { metrics: Record<string, Pair>; etcdVersion: string | null } | null = null;
  if (which.includes('backends')) {
    backends = await timed('backends', () =>
      runBackendsBench({ quick, dir, withEtcd, failoverRounds: numberFlag('backend-rounds', quick ? 2 : 5) }),
    );
  }

  const runSeconds = (Date.now() - started) / 1000;
  const meta: Measurement = {
    measuredAt: new Date().toISOString(),
    quick,
    benches: which.join(' + '),
    runSeconds: Math.round(runSeconds),
    nodeVersion: process.version,
    cpus: os.cpus().length,
    memGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    loadAverageAtStart: loadAtStart.join(' '),
  };
  const etcdMeta: Measurement = { etcdVersion, heartbeatMs: ETCD_HEARTBEAT_MS, electionMs: ETCD_ELECTION_MS, client: 'etcd3 (node), in the benchmark process' };
  let results = mergeResults(readResults(file), fresh, meta, etcdMeta);
  if (backends) {
    const backendMeta: Measurement = {
      etcdVersion: backends.etcdVersion,
      heartbeatMs: BACKEND_ETCD_HEARTBEAT_MS,
      electionMs: BACKEND_ETCD_ELECTION_MS,
      client: 'the etcd backend (etcd3) in each app node process',
    };
    results = mergeResults(results, backends.metrics, meta, backendMeta);
  }
  writeResults(file, results);
  render(results);

  if (Object.keys(fresh).length > 0) process.stdout.write(`\n${consoleTable(results, Object.keys(fresh))}\n`);
  if (backends) process.stdout.write(`\n${consoleTable(results, Object.keys(backends.metrics), BACKENDS_SIDES)}\n`);
  process.stdout.write('\n');
  process.stdout.write(
    `${which.join(' + ')}${quick ? ' (quick)' : ''} in ${runSeconds.toFixed(1)} s; wrote ${path.relative(process.cwd(), file)}, docs/bench/*.svg and docs/benchmarks.md\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
