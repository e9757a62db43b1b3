/**
 * Storage micro-benchmark: FileStorage.persist (one write + one fdatasync per batch) against the physical floor, a
 * bare fs.writeSync + fs.fdatasyncSync loop writing the same bytes to the same disk. A third case, `asyncFloor`,
 * writes the same bytes with async fs.write on an O_DSYNC file and no storage code: the gap between it and the
 * floor is the cost of handing I/O to libuv's threadpool (and grows when the CPUs are busy), the gap between it
 * and `storage` is ours.
 *
 *   npm run bench -- storage [--dir /path/on/the/disk] [--seconds 3] [--max 20000] [--rounds 6]
 *                            [--durability dsync|fdatasync] [--io threadpool|blocking]
 *   (or on its own: npm run build && node dist/bench/storage.js [same options])
 *
 * Prints one JSON line per case and a final JSON summary. Each case is bounded by time and by batch count, and is
 * run in rounds that alternate floor and storage, so load from other processes hits both alike.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeRecords, FileStorage, NodeDisk, type Durability, type Entry, type IoMode } from '../lib/testing.js';

const ENTRY_BYTES = 128;
const BATCH_SIZES = [1, 16, 256] as const;

export interface CaseResult {
  readonly case: 'floor' | 'asyncFloor' | 'storage';
  readonly batch: number;
  readonly batches: number;
  readonly seconds: number;
  readonly entriesPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly bytesPerBatch: number;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function summarize(kind: CaseResult['case'], batch: number, latenciesNs: number[], elapsedNs: number, bytes: number): CaseResult {
  const sorted = latenciesNs.slice().sort((a, b) => a - b);
  const pct = (p: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) / 1000);
  const seconds = elapsedNs / 1e9;
  return {
    case: kind,
    batch,
    batches: sorted.length,
    seconds: Number(seconds.toFixed(3)),
    entriesPerSec: Math.round((sorted.length * batch) / seconds),
    p50Us: pct(0.5),
    p99Us: pct(0.99),
    bytesPerBatch: bytes,
  };
}

function makeEntries(from: number, count: number, payload: Uint8Array): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) out.push({ term: 1, index: from + i, data: payload });
  return out;
}

/** Bytes FileStorage writes for one batch: the entries plus the hard state that advances with them. */
function batchBytes(count: number, payload: Uint8Array): number {
  return encodeRecords([
    ...makeEntries(1, count, payload).map((entry) => ({ type: 'entry' as const, entry })),
    { type: 'hardState', hardState: { term: 1, vote: 'node1', commit: 1 } },
  ]).length;
}

/** One timed run: latencies of each batch in ns, and the time it took. */
interface Run {
  readonly latencies: number[];
  readonly elapsedNs: number;
}

/** The physical floor: write the same bytes and fdatasync, synchronously, no event loop in between. */
function floorRun(fd: number, buf: Buffer, seconds: number, max: number): Run {
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let now = t0;
  while (latencies.length < max && now < deadline) {
    const before = now;
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
    now = process.hrtime.bigint();
    latencies.push(Number(now - before));
  }
  return { latencies, elapsedNs: Number(now - t0) };
}

/** The event loop's floor: the same bytes through one async write(2) on an O_DSYNC file, nothing else. */
function asyncWrite(fd: number, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, null, (err) => (err ? reject(err) : resolve())));
}

async function storageRun(persistOne: () => Promise<void>, seconds: number, max: number): Promise<Run> {
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let now = t0;
  while (latencies.length < max && now < deadline) {
    const before = now;
    await persistOne();
    now = process.hrtime.bigint();
    latencies.push(Number(now - before));
  }
  return { latencies, elapsedNs: Number(now - t0) };
}

/** Both sides of one batch size, alternating in `rounds` slices of `seconds / rounds`. */
async function runCase(dir: string, batch: number, opts: StorageBenchOptions): Promise<CaseResult[]> {
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  const bytes = batchBytes(batch, payload);
  const floorFile = path.join(dir, `floor-${batch}.bin`);
  const fd = fs.openSync(floorFile, 'a');
  const asyncFile = path.join(dir, `async-${batch}.bin`);
  const { O_APPEND, O_CREAT, O_WRONLY, O_DSYNC } = fs.constants;
  const asyncFd = fs.openSync(asyncFile, O_APPEND | O_CREAT | O_WRONLY | (O_DSYNC ?? 0));
  const buf = Buffer.alloc(bytes, 7);
  const dataDir = path.join(dir, `storage-${batch}`);
  const storage = new FileStorage(new NodeDisk(dataDir, { durability: opts.durability, io: opts.io }));
  await storage.open();
  let next = 1;
  const persistOne = (): Promise<void> => {
    const entries = makeEntries(next, batch, payload);
    next += batch;
    return storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: 'node1', commit: next - 1 } });
  };
  const floor: Run[] = [];
  const bare: Run[] = [];
  const ours: Run[] = [];
  const writeAsync = (): Promise<void> => asyncWrite(asyncFd, buf);
  try {
    floorRun(fd, buf, 1, 20); // warm-up
    await storageRun(writeAsync, 1, 20);
    await storageRun(persistOne, 1, 20);
    const slice = opts.seconds / opts.rounds;
    const perRound = Math.ceil(opts.max / opts.rounds);
    for (let r = 0; r < opts.rounds; r++) {
      floor.push(floorRun(fd, buf, slice, perRound));
      bare.push(await storageRun(writeAsync, slice, perRound));
      ours.push(await storageRun(persistOne, slice, perRound));
    }
  } finally {
    fs.closeSync(fd);
    fs.closeSync(asyncFd);
    await storage.close();
    fs.rmSync(floorFile, { force: true });
    fs.rmSync(asyncFile, { force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const merge = (runs: Run[]): Run => ({
    latencies: runs.flatMap((r) => r.latencies),
    elapsedNs: runs.reduce((n, r) => n + r.elapsedNs, 0),
  });
  const f = merge(floor);
  const a = merge(bare);
  const o = merge(ours);
  return [
    summarize('floor', batch, f.latencies, f.elapsedNs, bytes),
    summarize('asyncFloor', batch, a.latencies, a.elapsedNs, bytes),
    summarize('storage', batch, o.latencies, o.elapsedNs, bytes),
  ];
}

export interface StorageBenchOptions {
  readonly seconds: number;
  readonly max: number;
  readonly rounds: number;
  readonly durability: Durability | undefined;
  readonly io: IoMode;
}

/** The options from the command line (`--seconds`, `--max`, `--rounds`, `--durability`, `--io`, `--dir`). */
export function storageOptionsFromArgs(quick = false): StorageBenchOptions & { readonly dir: string } {
  const durability = arg('durability', '');
  return {
    seconds: Number(arg('seconds', quick ? '1' : '3')),
    max: Number(arg('max', '20000')),
    rounds: Number(arg('rounds', quick ? '2' : '6')),
    durability: durability === 'dsync' || durability === 'fdatasync' ? durability : undefined,
    io: ioMode(arg('io', 'auto')),
    dir: arg('dir', os.tmpdir()),
  };
}

function ioMode(raw: string): IoMode {
  if (raw === 'auto' || raw === 'threadpool' || raw === 'blocking') return raw;
  throw new Error(`--io expects auto, threadpool or blocking, got ${JSON.stringify(raw)}`);
}

export interface StorageBenchSummary {
  readonly bench: 'storage';
  readonly durability: Durability;
  readonly io: IoMode;
  readonly entryBytes: number;
  readonly results: readonly CaseResult[];
  readonly [more: string]: unknown;
}

/** Runs every case in a temp dir under `opts.dir`, printing one JSON line per case and the summary. */
export async function runStorageBench(opts: StorageBenchOptions & { readonly dir: string }): Promise<StorageBenchSummary> {
  const base = opts.dir;
  const dir = fs.mkdtempSync(path.join(base, 'catga-bench-storage-'));
  const results: CaseResult[] = [];
  try {
    for (const batch of BATCH_SIZES) {
      for (const result of await runCase(dir, batch, opts)) {
        results.push(result);
        process.stdout.write(`${JSON.stringify({ bench: 'storage', ...result })}\n`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const find = (kind: CaseResult['case'], batch: number): CaseResult => results.find((r) => r.case === kind && r.batch === batch) as CaseResult;
  const single = find('storage', 1);
  const singleFloor = find('floor', 1);
  const big = find('storage', 256);
  const summary: StorageBenchSummary = {
    bench: 'storage',
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    dir: base,
    durability: opts.durability ?? new NodeDisk(base).durability,
    io: opts.io,
    entryBytes: ENTRY_BYTES,
    results,
    singleEntryP50VsFloor: Number((single.p50Us / Math.max(1, singleFloor.p50Us)).toFixed(3)),
    singleEntryThroughputFloorVsOurs: Number((singleFloor.entriesPerSec / Math.max(1, single.entriesPerSec)).toFixed(3)),
    batch16ThroughputFloorVsOurs: Number((find('floor', 16).entriesPerSec / Math.max(1, find('storage', 16).entriesPerSec)).toFixed(3)),
    singleEntryP50VsAsyncFloor: Number((single.p50Us / Math.max(1, find('asyncFloor', 1).p50Us)).toFixed(3)),
    batch256EntriesPerSec: big.entriesPerSec,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    cpus: os.cpus().length,
    targets: {
      singleEntryWithin1_3xOfFloor: single.p50Us <= 1.3 * singleFloor.p50Us,
      batch256AtLeast100kEntriesPerSec: big.entriesPerSec >= 100_000,
    },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary;
}

if (require.main === module) {
  runStorageBench(storageOptionsFromArgs()).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
