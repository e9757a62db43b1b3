import fc from 'fast-check';
import { EMPTY_HARD_STATE, type Entry } from '../../lib/raft/types.js';
import { DataDirLockedError, DiskFullError, InvalidWriteError, StorageError } from '../../lib/storage/errors.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { SnapshotStore } from '../../lib/storage/snapshot-store.js';
import { SimDisk } from '../support/sim-disk.js';
import { batch, entries, entry, hs, MemoryLogger, plain, snapshot } from './helpers.js';

async function reopen(disk: SimDisk, storage: FileStorage | null, segmentBytes?: number, logger = new MemoryLogger()) {
  if (storage !== null) await storage.close();
  const next = new FileStorage(disk, { segmentBytes, logger });
  const state = await next.open();
  return { storage: next, state, logger };
}

async function walSizes(disk: SimDisk): Promise<number[]> {
  return (await disk.list('wal')).map((n) => disk.sizeOf(`wal/${n}`) ?? -1);
}

describe('FileStorage', () => {
  it('opens an empty dataDir with nothing in it and creates the layout', async () => {
    const disk = new SimDisk();
    const { storage, state } = await reopen(disk, null);
    expect(state).toEqual({ hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] });
    expect(await disk.list('')).toEqual(['snap', 'wal']);
    expect(await disk.list('wal')).toEqual(['0000000000000001-0000000000000001.wal']);
    await storage.close();
  });

  it('recovers what was persisted: entries, hard state', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 3, 1), hardState: hs(1, 'n1', 0) }));
    await storage.persist(batch({ entries: entries(4, 5, 2), hardState: hs(2, 'n2', 3) }));
    await storage.persist(batch({ hardState: hs(2, 'n2', 5) }));
    const { state } = await reopen(disk, storage);
    expect(state.hardState).toEqual(hs(2, 'n2', 5));
    expect(state.snapshot).toBeNull();
    expect(plain(state.entries)).toEqual(plain([...entries(1, 3, 1), ...entries(4, 5, 2)]));
  });

  it('replaces a conflicting suffix by appending, never rewriting; the last writer wins on replay', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 5, 1) }));
    const before = await walSizes(disk);
    await storage.persist(batch({ entries: entries(3, 4, 2) }));
    const after = await walSizes(disk);
    expect(after[0]).toBeGreaterThan(before[0] as number); // appended, not cut
    const { state } = await reopen(disk, storage);
    expect(plain(state.entries)).toEqual(plain([...entries(1, 2, 1), ...entries(3, 4, 2)]));
  });

  it('matches a naive model over random batches with conflicts, across reopens and segment rollovers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ back: fc.nat(6), count: fc.integer({ min: 0, max: 5 }), bump: fc.boolean(), reopen: fc.boolean() }),
          { maxLength: 25 },
        ),
        async (steps) => {
          const disk = new SimDisk();
          let { storage } = await reopen(disk, null, 256);
          const model: Entry[] = [];
          let term = 1;
          for (const step of steps) {
            if (step.bump) term++;
            const start = Math.max(1, model.length + 1 - step.back);
            const list = entries(start, start + step.count - 1, term, 7);
            await storage.persist(batch({ entries: list, hardState: hs(term, 'n1', 0) }));
            for (const e of list) {
              model.length = e.index - 1;
              model.push(e);
            }
            if (step.reopen) {
              const r = await reopen(disk, storage, 256);
              storage = r.storage;
              expect(plain(r.state.entries)).toEqual(plain(model));
            }
          }
          const r = await reopen(disk, storage, 256);
          expect(plain(r.state.entries)).toEqual(plain(model));
          await r.storage.close();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rolls over to a new segment when the next batch would pass segmentBytes', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null, 1024);
    for (let i = 0; i < 20; i++) await storage.persist(batch({ entries: entries(i * 5 + 1, i * 5 + 5, 1, 40) }));
    const names = await disk.list('wal');
    expect(names.length).toBeGreaterThan(3);
    names.forEach((name, i) => expect(name).toMatch(new RegExp(`^${String(i + 1).padStart(16, '0')}-\\d{16}\\.wal$`)));
    // Each segment is named after the first index it holds.
    expect(names.map((n) => Number(n.slice(17, 33))).every((first, i, all) => i === 0 || first > (all[i - 1] as number))).toBe(true);
    for (const size of await walSizes(disk)) expect(size).toBeLessThanOrEqual(1024);
    // A batch larger than a segment gets a segment of its own.
    await storage.persist(batch({ entries: entries(101, 130, 1, 40) }));
    expect((await walSizes(disk)).at(-1)).toBeGreaterThan(1024);
    const { state } = await reopen(disk, storage, 1024);
    expect(plain(state.entries)).toEqual(plain(entries(1, 130, 1, 40)));
  });

  it('compaction deletes segments wholly covered by a snapshot and keeps the hard state', async () => {
    const disk = new SimDisk();
    const logger = new MemoryLogger();
    let { storage } = await reopen(disk, null, 512, logger);
    await storage.persist(batch({ entries: entries(1, 2, 5), hardState: hs(5, 'n3', 2) }));
    for (let i = 3; i <= 60; i += 3) await storage.persist(batch({ entries: entries(i, i + 2, 5, 30) }));
    const segmentsBefore = await disk.list('wal');
    expect(segmentsBefore.length).toBeGreaterThan(4);
    await storage.saveSnapshot(snapshot(50, 5));
    const segmentsAfter = await disk.list('wal');
    expect(segmentsAfter.length).toBeLessThan(segmentsBefore.length);
    expect(segmentsAfter.at(-1)).toBe(segmentsBefore.at(-1)); // the active segment stays
    // The segment holding the only hard state record is gone, but the hard state is not.
    expect(segmentsAfter).not.toContain(segmentsBefore[0]);
    const { state } = await reopen(disk, storage, 512);
    expect(state.hardState).toEqual(hs(5, 'n3', 2));
    expect(state.snapshot?.meta).toEqual(snapshot(50, 5).meta);
    expect(Buffer.from(state.snapshot?.data ?? []).toString()).toBe('state@50');
    expect(plain(state.entries)).toEqual(plain(entries(51, 62, 5, 30)));
  });

  it('keeps the newest two snapshots and removes .tmp leftovers at open', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 30, 1) }));
    await storage.saveSnapshot(snapshot(10, 1));
    await storage.saveSnapshot(snapshot(20, 1));
    await storage.saveSnapshot(snapshot(30, 1));
    expect(await disk.list('snap')).toEqual(['0000000000000020-0000000000000001.snap', '0000000000000030-0000000000000001.snap']);
    const tmp = await disk.openAppend('snap/0000000000000040-0000000000000001.snap.tmp');
    await tmp.append(Buffer.from('half a snapshot'));
    await tmp.close();
    const r = await reopen(disk, storage);
    expect(await disk.list('snap')).toEqual(['0000000000000020-0000000000000001.snap', '0000000000000030-0000000000000001.snap']);
    expect(r.logger.warnings.join('\n')).toMatch(/removed snap\/0000000000000040-0000000000000001\.snap\.tmp/);
    expect(r.state.snapshot?.meta.index).toBe(30);
    expect(r.state.entries).toEqual([]);
  });

  it('installs a snapshot from the leader: a mismatching log is discarded and restarts after it', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 10, 1), hardState: hs(1, 'n1', 4) }));
    await storage.persist(batch({ snapshot: snapshot(20, 3), entries: entries(21, 22, 3), hardState: hs(3, 'n2', 20) }));
    await expect(storage.persist(batch({ entries: entries(24, 24, 3) }))).rejects.toThrow(InvalidWriteError);
    await storage.persist(batch({ entries: entries(23, 23, 3) }));
    const { state } = await reopen(disk, storage);
    expect(state.snapshot?.meta.index).toBe(20);
    expect(state.hardState).toEqual(hs(3, 'n2', 20));
    expect(plain(state.entries)).toEqual(plain(entries(21, 23, 3)));
  });

  it('installs a snapshot that matches the log at its index: the entries after it are kept', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 10, 1) }));
    await storage.persist(batch({ snapshot: snapshot(5, 1) }));
    const { state } = await reopen(disk, storage);
    expect(state.snapshot?.meta.index).toBe(5);
    expect(plain(state.entries)).toEqual(plain(entries(6, 10, 1)));
  });

  it('refuses a gap or an out-of-date snapshot without writing and stays usable', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 5, 1) }));
    await expect(storage.persist(batch({ entries: entries(7, 8, 1) }))).rejects.toThrow(/gap/);
    await expect(storage.persist(batch({ entries: [entry(6, 1), entry(8, 1)] }))).rejects.toThrow(/not consecutive/);
    await storage.saveSnapshot(snapshot(3, 1));
    await expect(storage.saveSnapshot(snapshot(3, 1))).rejects.toThrow(InvalidWriteError);
    await expect(storage.persist(batch({ snapshot: snapshot(2, 1) }))).rejects.toThrow(/not newer/);
    // Entries at or below the snapshot are ignored, the rest applied.
    await storage.persist(batch({ entries: entries(2, 6, 1) }));
    const { state } = await reopen(disk, storage);
    expect(plain(state.entries)).toEqual(plain(entries(4, 6, 1)));
  });

  it('goes into a failed state when a write fails (EIO): this and every later persist rejects', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 2, 1) }));
    disk.failNextWrites(1, 'EIO');
    const first = storage.persist(batch({ entries: entries(3, 3, 1) }));
    await expect(first).rejects.toBeInstanceOf(StorageError);
    await expect(first).rejects.toMatchObject({ code: 'EIO' });
    const err = await first.catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/I\/O error/);
    // The fault is gone, but the storage stays failed: nothing after an unknown disk state is acknowledged.
    await expect(storage.persist(batch({ entries: entries(3, 3, 1) }))).rejects.toBe(err);
    await expect(storage.saveSnapshot(snapshot(1, 1))).rejects.toBe(err);
    // A restart is the way back.
    const { state } = await reopen(disk, storage);
    expect(plain(state.entries)).toEqual(plain(entries(1, 2, 1)));
  });

  it('refuses a write on a full disk (ENOSPC) with DiskFullError and stays usable (see disk-full.spec.ts)', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    disk.failNextWrites(1, 'ENOSPC');
    await expect(storage.persist(batch({ entries: entries(1, 1, 1) }))).rejects.toBeInstanceOf(DiskFullError);
    await storage.persist(batch({ entries: entries(1, 1, 1) }));
    const { state } = await reopen(disk, storage);
    expect(plain(state.entries)).toEqual(plain(entries(1, 1, 1)));
  });

  it('goes into a failed state when fdatasync fails (EIO)', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    disk.failNextSyncs(1);
    const err = await storage.persist(batch({ entries: entries(1, 1, 1) })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EIO' });
    await expect(storage.persist(batch({ entries: entries(1, 1, 1) }))).rejects.toBe(err);
    await storage.close();
  });

  it('takes the dataDir lock: a second open of the same disk fails until the first closes', async () => {
    const disk = new SimDisk('node-a');
    const { storage } = await reopen(disk, null);
    const second = new FileStorage(disk);
    await expect(second.open()).rejects.toBeInstanceOf(DataDirLockedError);
    await expect(second.open()).rejects.toThrow(/node-a/);
    await storage.close();
    await second.open();
    await second.close();
  });

  it('refuses calls before open and after close', async () => {
    const storage = new FileStorage(new SimDisk());
    await expect(storage.persist(batch({ entries: entries(1, 1, 1) }))).rejects.toThrow(InvalidWriteError);
    await storage.open();
    await storage.close();
    await expect(storage.saveSnapshot(snapshot(1, 1))).rejects.toThrow(InvalidWriteError);
  });

  it('serializes concurrent calls in call order', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await Promise.all([1, 2, 3, 4, 5].map((i) => storage.persist(batch({ entries: [entry(i, 1)], hardState: hs(1, '', i) }))));
    const { state } = await reopen(disk, storage);
    expect(plain(state.entries)).toEqual(plain(entries(1, 5, 1)));
    expect(state.hardState.commit).toBe(5);
  });
});

describe('FileStorage after a crash between a snapshot file and its WAL marker', () => {
  it('keeps the decision it made at open: entries written afterwards survive the next restart', async () => {
    const disk = new SimDisk();
    let { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 100, 1), hardState: hs(1, 'n1', 10) }));
    await storage.close();
    // The snapshot file of an install from the leader reached the disk; its marker did not.
    await new SnapshotStore(disk).save(snapshot(60, 2));
    let r = await reopen(disk, null);
    expect(r.state.snapshot?.meta.index).toBe(60);
    expect(r.state.entries).toEqual([]); // the log disagreed with the snapshot at 60
    await r.storage.persist(batch({ entries: entries(61, 70, 2), hardState: hs(2, 'n2', 65) }));
    r = await reopen(disk, r.storage);
    expect(plain(r.state.entries)).toEqual(plain(entries(61, 70, 2)));
    expect(r.state.hardState).toEqual(hs(2, 'n2', 65));
    await r.storage.close();
  });

  it('also when the snapshot lies past the end of the log', async () => {
    const disk = new SimDisk();
    const { storage } = await reopen(disk, null);
    await storage.persist(batch({ entries: entries(1, 10, 1) }));
    await storage.close();
    await new SnapshotStore(disk).save(snapshot(60, 2));
    let r = await reopen(disk, null);
    expect(r.state.entries).toEqual([]);
    expect(r.logger.warnings.join('\n')).toMatch(/snapshot 60 had no marker/);
    await r.storage.persist(batch({ entries: entries(61, 62, 2) }));
    r = await reopen(disk, r.storage);
    expect(r.state.snapshot?.meta.index).toBe(60);
    expect(plain(r.state.entries)).toEqual(plain(entries(61, 62, 2)));
    await r.storage.close();
  });
});
