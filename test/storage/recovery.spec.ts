import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EMPTY_HARD_STATE, type Entry, type HardState } from '../../lib/raft/types.js';
import { CorruptLogError, CorruptSnapshotError, UnsupportedFormatError } from '../../lib/storage/errors.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { NodeDisk } from '../../lib/storage/node-disk.js';
import type { RecoveredState } from '../../lib/storage/raft-storage.js';
import { decodeRecords, encodeRecords, WAL_MAGIC } from '../../lib/storage/record.js';
import { SimDisk } from '../support/sim-disk.js';
import { batch, entries, hs, MemoryLogger, plain, rng, snapshot, tempDir } from './helpers.js';

/** A log written in batches, with what is known at each batch boundary. */
interface Written {
  /** Every entry written, in order (append-only here). */
  all: Entry[];
  /** After batch b: entries so far, hard state, and where the batch ended (last segment and its size). */
  marks: { entries: number; hardState: HardState; segment: string; end: number }[];
}

async function writeBatches(disk: SimDisk | NodeDisk, sizes: readonly number[], segmentBytes: number): Promise<Written> {
  const storage = new FileStorage(disk, { segmentBytes });
  await storage.open();
  const written: Written = { all: [], marks: [] };
  let next = 1;
  for (const [b, size] of sizes.entries()) {
    const list = entries(next, next + size - 1, 1 + (b >> 2), 5 + (b % 7) * 9);
    const hardState = hs(1 + (b >> 2), `n${b % 3}`, next - 1);
    await storage.persist(batch({ entries: list, hardState }));
    next += size;
    written.all.push(...list);
    const names = await disk.list('wal');
    const segment = `wal/${names.at(-1)}`;
    written.marks.push({ entries: written.all.length, hardState, segment, end: (await disk.readFile(segment))?.length ?? 0 });
  }
  await storage.close();
  return written;
}

/**
 * A cut at `cut` bytes into the last segment may keep any record prefix of the batch it falls in, nothing more.
 * Checked by hand (jest's matchers are slow in a loop of thousands), with the matchers only to report a failure.
 */
function expectPrefix(state: RecoveredState, written: Written, segment: string, cut: number): void {
  let complete = 0;
  while (complete < written.marks.length) {
    const m = written.marks[complete] as Written['marks'][number];
    if (m.segment === segment && m.end > cut) break;
    complete++;
  }
  const done = written.marks[complete - 1];
  const partial = written.marks[complete];
  const hardState = done?.hardState ?? EMPTY_HARD_STATE;
  const min = done?.entries ?? 0;
  const max = partial?.entries ?? written.all.length;
  const n = state.entries.length;
  // Each batch ends with its seal; a cut inside the seal keeps every record of the batch, its hard state included.
  const wholeBatch = partial !== undefined && n === max && JSON.stringify(state.hardState) === JSON.stringify(partial.hardState);
  const same =
    (wholeBatch || JSON.stringify(state.hardState) === JSON.stringify(hardState)) &&
    n >= min &&
    n <= max &&
    state.entries.every((e, i) => {
      const w = written.all[i] as Entry;
      return e.index === w.index && e.term === w.term && Buffer.compare(e.data, w.data) === 0;
    });
  if (same) return;
  expect({ cut, hardState: state.hardState, n }).toEqual({ cut, hardState, n: Math.min(Math.max(n, min), max) });
  expect(plain(state.entries)).toEqual(plain(written.all.slice(0, n)));
}

async function openState(disk: SimDisk | NodeDisk, logger = new MemoryLogger()): Promise<{ state: RecoveredState; logger: MemoryLogger }> {
  const storage = new FileStorage(disk, { logger });
  const state = await storage.open();
  await storage.close();
  return { state, logger };
}

function flipByte(file: string, offset: number): void {
  const bytes = fs.readFileSync(file);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x20;
  fs.writeFileSync(file, bytes);
}

describe('recovery', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('recovers from a cut at every byte of the last segment: a prefix of what was synced, never an error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 12 }), async (sizes) => {
        const disk = new SimDisk();
        const written = await writeBatches(disk, sizes, 700);
        const segment = written.marks.at(-1)?.segment as string;
        const size = disk.sizeOf(segment) as number;
        for (let cut = 0; cut <= size; cut++) {
          const copy = disk.clone();
          const file = await copy.openAppend(segment);
          await file.truncate(cut);
          await file.sync();
          await file.close();
          const { state } = await openState(copy);
          expectPrefix(state, written, segment, cut);
          // The repair is durable: a second open finds a clean log with the same contents.
          const again = await openState(copy);
          if (again.logger.warnings.length > 0 || again.state.entries.length !== state.entries.length) {
            expect({ cut, warnings: again.logger.warnings, n: again.state.entries.length }).toEqual({ cut, warnings: [], n: state.entries.length });
          }
        }
      }),
      { numRuns: 20 },
    );
  });

  it('recovers from cuts at random offsets of real files', async () => {
    const source = path.join(tmp.dir, 'source');
    const written = await writeBatches(new NodeDisk(source), [3, 1, 4, 1, 5, 9, 2, 6], 1 << 20);
    const segment = written.marks.at(-1)?.segment as string;
    const size = fs.statSync(path.join(source, segment)).size;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: size }), async (cut) => {
        const dir = path.join(tmp.dir, `cut-${run++}`);
        fs.cpSync(source, dir, { recursive: true });
        fs.truncateSync(path.join(dir, segment), cut);
        const { state } = await openState(new NodeDisk(dir));
        expectPrefix(state, written, segment, cut);
        fs.rmSync(dir, { recursive: true });
      }),
      { numRuns: 30 },
    );
  });

  it('stops with CorruptLogError naming the file and offset for a flipped bit mid-log', async () => {
    const written = await writeBatches(new NodeDisk(tmp.dir), [4, 4, 4, 4], 1 << 20);
    const segment = written.marks.at(-1)?.segment as string;
    const file = path.join(tmp.dir, segment);
    const records = decodeRecords(fs.readFileSync(file)).records;
    const victim = records[5] as (typeof records)[number];
    flipByte(file, victim.offset + 12);
    const err = await openState(new NodeDisk(tmp.dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptLogError);
    expect(err).toMatchObject({ file: segment, offset: victim.offset });
    expect((err as Error).message).toContain(`${segment} at byte ${victim.offset}`);
  });

  it('treats a flipped bit in the very last record as a torn tail: cut off and logged', async () => {
    const written = await writeBatches(new NodeDisk(tmp.dir), [2, 2, 2], 1 << 20);
    const segment = written.marks.at(-1)?.segment as string;
    const file = path.join(tmp.dir, segment);
    // The last record is the batch's seal; the one before it is the batch's hard state.
    const last = decodeRecords(fs.readFileSync(file)).records.at(-2) as { offset: number };
    flipByte(file, last.offset + 11);
    const { state, logger } = await openState(new NodeDisk(tmp.dir));
    expect(logger.warnings.join('\n')).toMatch(new RegExp(`torn final record off ${segment} at byte ${last.offset}`));
    // The last record of the last batch was its hard state; the entries before it survive.
    expect(plain(state.entries)).toEqual(plain(written.all));
    expect(state.hardState).toEqual(written.marks[1]?.hardState);
    expect(fs.statSync(file).size).toBe(last.offset);
  });

  it('never treats damage in an older segment as a torn tail', async () => {
    const disk = new SimDisk();
    const written = await writeBatches(disk, [3, 3, 3, 3, 3, 3], 300);
    const first = written.marks[0]?.segment as string;
    expect(written.marks.at(-1)?.segment).not.toBe(first);
    const bytes = (await disk.readFile(first)) as Uint8Array;
    const last = decodeRecords(bytes).records.at(-1) as { offset: number };
    disk.corrupt(first, last.offset + 10);
    await expect(openState(disk)).rejects.toMatchObject({ name: 'CorruptLogError', file: first, offset: last.offset });
  });

  it('refuses a missing segment in the middle', async () => {
    const disk = new SimDisk();
    await writeBatches(disk, [3, 3, 3, 3, 3, 3], 300);
    const names = await disk.list('wal');
    expect(names.length).toBeGreaterThan(2);
    await disk.unlink(`wal/${names[1]}`);
    await expect(openState(disk)).rejects.toThrow(/segment 2 is missing/);
  });

  it('refuses a WAL file of another format or version with a clear error', async () => {
    fs.mkdirSync(path.join(tmp.dir, 'wal'));
    const name = 'wal/0000000000000001-0000000000000001.wal';
    fs.writeFileSync(path.join(tmp.dir, name), 'SQLite format 3\0 and then a lot of other bytes that are not ours');
    const err = await openState(new NodeDisk(tmp.dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect((err as Error).message).toMatch(new RegExp(`${name} is not a file this version of catga-cluster can read`));

    fs.writeFileSync(path.join(tmp.dir, name), encodeRecords([{ type: 'segmentHeader', magic: WAL_MAGIC, version: 2, firstIndex: 1 }]));
    await expect(openState(new NodeDisk(tmp.dir))).rejects.toThrow(/WAL format version 2, this build reads 1/);
  });

  it('refuses a snapshot file of another format', async () => {
    fs.mkdirSync(path.join(tmp.dir, 'snap'));
    fs.writeFileSync(path.join(tmp.dir, 'snap/0000000000000005-0000000000000001.snap'), 'PK\x03\x04 a zip file, say');
    const err = await openState(new NodeDisk(tmp.dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedFormatError);
    expect((err as Error).message).toMatch(/does not start with CATGASNP/);
  });

  describe('a snapshot with a bad CRC', () => {
    async function setup(segmentBytes: number): Promise<SimDisk> {
      const disk = new SimDisk();
      const storage = new FileStorage(disk, { segmentBytes });
      await storage.open();
      for (let i = 1; i <= 60; i += 5) await storage.persist(batch({ entries: entries(i, i + 4, 2, 20), hardState: hs(2, 'n1', i + 4) }));
      await storage.saveSnapshot(snapshot(20, 2));
      await storage.saveSnapshot(snapshot(50, 2));
      await storage.close();
      disk.corrupt('snap/0000000000000050-0000000000000002.snap', 40);
      return disk;
    }

    it('is skipped with a warning when an older one exists and the WAL still covers the difference', async () => {
      const disk = await setup(1 << 20);
      const { state, logger } = await openState(disk);
      expect(logger.warnings.join('\n')).toMatch(/skipped damaged snapshot snap\/0000000000000050-0000000000000002\.snap \(CRC mismatch\)/);
      expect(state.snapshot?.meta.index).toBe(20);
      expect(plain(state.entries)).toEqual(plain(entries(21, 60, 2, 20)));
      expect(await disk.list('snap')).toContain('0000000000000050-0000000000000002.snap.corrupt');
    });

    it('stops the node, naming the file, when the WAL no longer covers it', async () => {
      const disk = await setup(300);
      const err = await openState(disk).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptSnapshotError);
      expect(err).toMatchObject({ file: 'snap/0000000000000050-0000000000000002.snap' });
      expect((err as Error).message).toMatch(/WAL does not hold entries 21 to 50/);
    });

    it('stops the node when there is no older snapshot', async () => {
      const disk = new SimDisk();
      const storage = new FileStorage(disk);
      await storage.open();
      await storage.persist(batch({ entries: entries(1, 5, 1) }));
      await storage.saveSnapshot(snapshot(5, 1));
      await storage.close();
      disk.corrupt('snap/0000000000000005-0000000000000001.snap', 30);
      await expect(openState(disk)).rejects.toThrow(/no older valid snapshot/);
    });
  });
});

/**
 * The model a crash test checks against: the full log (index i at [i-1]; entries at or below the snapshot are
 * placeholders), the snapshot index and the hard state.
 */
interface Model {
  log: Entry[];
  snapIndex: number;
  hardState: HardState;
}

function applyEntries(model: Model, list: readonly Entry[]): Model {
  const log = model.log.slice();
  for (const e of list) {
    if (e.index <= model.snapIndex) continue;
    log.length = e.index - 1;
    log.push(e);
  }
  return { ...model, log };
}

function matches(state: RecoveredState, model: Model): boolean {
  return (
    (state.snapshot?.meta.index ?? 0) === model.snapIndex &&
    JSON.stringify(state.hardState) === JSON.stringify(model.hardState) &&
    JSON.stringify(plain(state.entries)) === JSON.stringify(plain(model.log.slice(model.snapIndex)))
  );
}

describe('crash on SimDisk', () => {
  it('loses only unacknowledged writes, never acknowledged ones, across repeated power cuts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 }), async (seed) => {
        const r = rng(seed);
        const pick = (n: number): number => Math.floor(r() * n);
        let disk = new SimDisk();
        let model: Model = { log: [], snapIndex: 0, hardState: EMPTY_HARD_STATE };
        let term = 1;
        for (let cycle = 0; cycle < 6; cycle++) {
          const storage = new FileStorage(disk, { segmentBytes: 400 });
          await storage.open();

          // One step of the workload: returns the outcomes it may leave on disk if cut short, the full one last.
          const step = (): { run: () => Promise<void>; outcomes: Model[] } => {
            const commit = model.hardState.commit;
            const last = model.log.length;
            if (r() < 0.15 && commit > model.snapIndex) {
              const index = model.snapIndex + 1 + pick(commit - model.snapIndex);
              const snap = snapshot(index, (model.log[index - 1] as Entry).term);
              const after = { ...model, snapIndex: index };
              return { run: () => storage.saveSnapshot(snap), outcomes: [model, after] };
            }
            if (r() < 0.12) {
              // A snapshot from the leader: past our log (the log is discarded) or matching an entry (kept).
              // Matching one of our entries, disagreeing with an uncommitted one, or past the end of our log.
              const kind = pick(3);
              const low = Math.max(model.snapIndex, commit);
              const match = kind === 0 && last > model.snapIndex;
              const conflict = kind === 1 && last > low;
              const index = match
                ? model.snapIndex + 1 + pick(last - model.snapIndex)
                : conflict
                  ? low + 1 + pick(last - low)
                  : Math.max(last, model.snapIndex) + 1 + pick(3);
              const snapTerm = match ? (model.log[index - 1] as Entry).term : ++term;
              const log = match ? model.log.slice() : model.log.slice(0, index);
              while (log.length < index) log.push({ index: log.length + 1, term: snapTerm, data: new Uint8Array(0) });
              const installed: Model = { log, snapIndex: index, hardState: model.hardState };
              // Entries after a matching snapshot continue the log; committed entries are never replaced.
              const from = match ? last + 1 : index + 1;
              const list = entries(from, from + pick(4) - 1, match ? term : snapTerm, pick(20));
              const hardState = hs(term, `n${term % 3}`, Math.max(commit, index));
              const outcomes = [model, ...[...list, null].map((_, j) => applyEntries(installed, list.slice(0, j)))];
              outcomes.push({ ...applyEntries(installed, list), hardState });
              const snap = snapshot(index, snapTerm);
              return { run: () => storage.persist(batch({ snapshot: snap, entries: list, hardState })), outcomes };
            }
            if (r() < 0.2) term++;
            const start = Math.max(commit, model.snapIndex) + 1 + pick(last - Math.max(commit, model.snapIndex) + 1);
            const list = entries(start, start + pick(5) - 1, term, pick(40));
            const newLast = list.length > 0 ? start + list.length - 1 : last;
            const hardState = hs(term, `n${term % 3}`, Math.min(newLast, commit + pick(4)));
            const outcomes = [...list, null].map((_, j) => applyEntries(model, list.slice(0, j)));
            outcomes.push({ ...applyEntries(model, list), hardState });
            return { run: () => storage.persist(batch({ entries: list, hardState })), outcomes };
          };

          for (let n = 3 + pick(12); n > 0; n--) {
            const s = step();
            await s.run();
            model = s.outcomes.at(-1) as Model;
          }
          // Cut the power in the middle of one more step.
          const s = step();
          let acked = false;
          const running = s.run().then(() => {
            acked = true;
          });
          for (let ticks = pick(150); ticks > 0; ticks--) await Promise.resolve();
          disk = disk.crash(r);
          await running.catch(() => undefined);

          const state = await new FileStorage(disk, { segmentBytes: 400 }).open();
          const possible = acked ? s.outcomes.slice(-1) : s.outcomes;
          const found = possible.find((m) => matches(state, m));
          if (found === undefined) {
            throw new Error(`recovered state matches no allowed outcome (seed ${seed}, cycle ${cycle}, acked ${acked})`);
          }
          model = found;
          disk = disk.crash(r); // releases the lock of the instance just opened
        }
      }),
      { numRuns: 300 },
    );
  });
});
