import type { AppendFile } from '../../lib/storage/disk.js';
import { NodeDisk } from '../../lib/storage/node-disk.js';
import { decodeSnapshot, encodeSnapshot, encodeSnapshotParts } from '../../lib/storage/snapshot-file.js';
import { SnapshotStore } from '../../lib/storage/snapshot-store.js';
import type { Snapshot } from '../../lib/raft/types.js';
import { SimDisk } from '../support/sim-disk.js';
import { snapshot, tempDir } from './helpers.js';

/** A snapshot whose data is `bytes` long and not uniform, so a misplaced step would show in the CRC. */
function large(index: number, bytes: number): Snapshot {
  const data = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + (i >>> 11)) & 0xff;
  return { ...snapshot(index, 3), data };
}

/** Counts the appends made to snapshot files. */
class CountingDisk extends SimDisk {
  readonly appends: number[] = [];

  override async openAppend(path: string): Promise<AppendFile> {
    const file = await super.openAppend(path);
    if (!path.startsWith('snap/')) return file;
    const appends = this.appends;
    return {
      path: file.path,
      get size() {
        return file.size;
      },
      append: (data) => {
        appends.push(data.byteLength);
        return file.append(data);
      },
      sync: () => file.sync(),
      truncate: (n) => file.truncate(n),
      close: () => file.close(),
    };
  }
}

describe('snapshot file encoding in parts', () => {
  it.each([0, 10, (1 << 20) - 1, 1 << 20, 3.5 * (1 << 20)])('gives the bytes of encodeSnapshot for %i data bytes', async (bytes) => {
    const snap = large(42, bytes);
    let pauses = 0;
    const [head, data] = await encodeSnapshotParts(snap, async () => void pauses++);
    expect(data).toBe(snap.data); // not copied
    expect(Buffer.concat([head, data]).equals(encodeSnapshot(snap))).toBe(true);
    expect(pauses).toBe(Math.max(0, Math.ceil(bytes / (256 * 1024)) - 1));
    const back = decodeSnapshot(Buffer.concat([head, data]), 'x.snap');
    expect(typeof back).not.toBe('string');
    expect(Buffer.from((back as Snapshot).data).equals(Buffer.from(snap.data))).toBe(true);
  });
});

describe('SnapshotStore.save', () => {
  it('writes a large snapshot in steps of 256 KiB, the first behind its head, and reads it back', async () => {
    const disk = new CountingDisk();
    const store = new SnapshotStore(disk);
    await store.prepare();
    const snap = large(7, 2.5 * (1 << 20));
    const info = await store.save(snap);
    const step = 256 * 1024;
    const head = encodeSnapshot(snap).byteLength - snap.data.byteLength;
    expect(disk.appends).toEqual([head + step, ...Array.from({ length: 9 }, () => step)]);
    expect((await store.list()).files).toEqual([info]);
    const read = await store.read(info);
    expect(typeof read).not.toBe('string');
    expect(Buffer.from((read as Snapshot).data).equals(Buffer.from(snap.data))).toBe(true);
  });

  it('leaves on a real disk the same file encodeSnapshot gives', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const disk = new NodeDisk(dir);
      const store = new SnapshotStore(disk);
      await store.prepare();
      const snap = large(9, 1.5 * (1 << 20));
      const info = await store.save(snap);
      expect(Buffer.from((await disk.readFile(info.path))!).equals(encodeSnapshot(snap))).toBe(true);
      expect(await disk.list('snap')).toEqual([info.path.slice('snap/'.length)]);
    } finally {
      cleanup();
    }
  });

  it('writes a small snapshot in one write', async () => {
    const disk = new CountingDisk();
    const store = new SnapshotStore(disk);
    await store.prepare();
    const snap = large(3, 100);
    await store.save(snap);
    expect(disk.appends).toEqual([encodeSnapshot(snap).byteLength]);
  });

  it('empties a .tmp file left by an interrupted write before writing it again', async () => {
    const disk = new SimDisk();
    const store = new SnapshotStore(disk);
    await store.prepare();
    const snap = large(5, 4096);
    const tmp = await disk.openAppend('snap/0000000000000005-0000000000000003.snap.tmp');
    await tmp.append(Buffer.alloc(9000, 1));
    await tmp.close();
    const info = await store.save(snap);
    expect(Buffer.from((await disk.readFile(info.path))!).equals(encodeSnapshot(snap))).toBe(true);
  });
});
