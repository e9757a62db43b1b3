import type { Disk } from '../../lib/storage/disk.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { SimDisk } from '../support/sim-disk.js';
import { batch, entries, MemoryLogger, plain, snapshot } from './helpers.js';

/** A SimDisk where the rename of the snapshot at one index waits until released; it counts snapshot files written. */
class GatedDisk extends SimDisk {
  snapshotWrites = 0;
  private held = '';
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;

  hold(index: number): void {
    this.held = `snap/${String(index).padStart(16, '0')}-`;
    this.gate = new Promise((r) => (this.open = r));
  }

  release(): void {
    this.held = '';
    this.open();
  }

  override async openAppend(path: string): ReturnType<Disk['openAppend']> {
    if (path.startsWith('snap/')) this.snapshotWrites++;
    return super.openAppend(path);
  }

  override async rename(from: string, to: string): Promise<void> {
    if (this.held !== '' && to.startsWith(this.held)) await this.gate;
    return super.rename(from, to);
  }
}

const noRandom = (): number => 0.99;

/** A storage on a fresh GatedDisk holding entries 1–30 of term 1. */
async function storageWith30(): Promise<{ disk: GatedDisk; storage: FileStorage }> {
  const disk = new GatedDisk();
  const storage = new FileStorage(disk);
  await storage.open();
  await storage.persist(batch({ entries: entries(1, 30, 1) }));
  return { disk, storage };
}

/** Opens `disk` again and checks what it recovers: the snapshot's index and the entries after it. */
async function expectRecovered(disk: Disk, logger: MemoryLogger, snapshotIndex: number, lastIndex: number): Promise<void> {
  const reopened = new FileStorage(disk, { logger });
  const state = await reopened.open();
  expect(state.snapshot?.meta.index).toBe(snapshotIndex);
  expect(plain(state.entries)).toEqual(plain(entries(snapshotIndex + 1, lastIndex, 1)));
  await reopened.close();
}

describe('FileStorage.writeSnapshotImage', () => {
  it('lets persist() go on while an image is written, and saveSnapshot() then only records it', async () => {
    const { disk, storage } = await storageWith30();
    disk.hold(20);
    let imageDone = false;
    const image = storage.writeSnapshotImage(snapshot(20, 1)).then(() => (imageDone = true));
    // The image is stuck at its rename; entries still reach the WAL.
    await storage.persist(batch({ entries: entries(31, 32, 1) }));
    expect(imageDone).toBe(false);
    disk.release();
    await image;
    expect(disk.snapshotWrites).toBe(1);
    await storage.saveSnapshot(snapshot(20, 1));
    expect(disk.snapshotWrites).toBe(1); // not written twice
    await storage.close();
    await expectRecovered(disk, new MemoryLogger(), 20, 32);
  });

  it('an image whose marker a crash prevented is used at the next open, with its marker written then', async () => {
    const { disk, storage } = await storageWith30();
    await storage.writeSnapshotImage(snapshot(20, 1));
    await storage.persist(batch({ entries: entries(31, 33, 1) }));
    const logger = new MemoryLogger();
    await expectRecovered(disk.crash(noRandom), logger, 20, 33);
    expect(logger.warnings.join('\n')).toMatch(/snapshot 20 had no marker in the WAL \(a crash between writing the image and recording it\)/);
  });

  it('an image overtaken by a newer snapshot is never recorded, and close() waits for a write under way', async () => {
    const { disk, storage } = await storageWith30();
    disk.hold(10);
    const image = storage.writeSnapshotImage(snapshot(10, 1));
    // A leader's snapshot lands first.
    await storage.persist(batch({ snapshot: snapshot(25, 1) }));
    let closed = false;
    const closing = storage.close().then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(false);
    disk.release();
    await image;
    await closing;
    await expectRecovered(disk, new MemoryLogger(), 25, 30);
  });
});
