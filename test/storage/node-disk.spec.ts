import { sealBatch } from '../../lib/storage/record.js';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataDirLockedError, StorageError, toStorageError } from '../../lib/storage/errors.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { NodeDisk, type NodeDiskOptions } from '../../lib/storage/node-disk.js';
import { batch, entries, plain, tempDir } from './helpers.js';

describe('NodeDisk', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  // Regression: the dataDir, wal/ and snap/ were created without syncing their parents, so a power cut could lose a
  // directory together with the files fsynced inside it.
  it('creates directories durably: every parent that gained an entry is fsynced, once', async () => {
    const disk = new NodeDisk(path.join(tmp.dir, 'data'));
    const open = jest.spyOn(fs.promises, 'open');
    try {
      await disk.mkdir('wal/seg');
      const synced = open.mock.calls.filter(([, flags]) => flags === 'r').map(([p]) => path.relative(tmp.dir, String(p)) || '.');
      expect(synced).toEqual([path.join('data', 'wal'), 'data', '.']);
      open.mockClear();
      await disk.mkdir('wal');
      expect(open).not.toHaveBeenCalled(); // nothing was created
    } finally {
      open.mockRestore();
    }
    expect(fs.statSync(path.join(tmp.dir, 'data', 'wal', 'seg')).isDirectory()).toBe(true);
  });

  it('does the Disk operations on real files', async () => {
    const disk = new NodeDisk(tmp.dir);
    expect(await disk.list('nope')).toEqual([]);
    expect(await disk.readFile('nope')).toBeNull();
    await disk.mkdir('a/b');
    const f = await disk.openAppend('a/b/f');
    await f.append(Buffer.from('hello '));
    await f.append(new Uint8Array(Buffer.from('world')));
    expect(f.size).toBe(11);
    await f.sync();
    await f.truncate(5);
    expect(f.size).toBe(5);
    await f.close();
    const g = await disk.openAppend('a/b/f');
    expect(g.size).toBe(5);
    await g.close();
    await disk.rename('a/b/f', 'a/b/g');
    await disk.syncDir('a/b');
    expect(await disk.list('a/b')).toEqual(['g']);
    expect(Buffer.from((await disk.readFile('a/b/g')) as Uint8Array).toString()).toBe('hello');
    await disk.unlink('a/b/g');
    expect(await disk.list('a/b')).toEqual([]);
  });

  it('refuses a second lock on the dataDir from this process', async () => {
    const first = new FileStorage(new NodeDisk(tmp.dir));
    await first.open();
    const err = await new FileStorage(new NodeDisk(tmp.dir)).open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect(err).toMatchObject({ dataDir: tmp.dir, pid: process.pid });
    await first.close();
    expect(fs.existsSync(path.join(tmp.dir, 'LOCK'))).toBe(false);
    const again = new FileStorage(new NodeDisk(tmp.dir));
    await again.open();
    await again.close();
  });

  it('refuses a dataDir locked by another live process, naming the dataDir, the pid and what to do', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(tmp.dir, 'LOCK'), `${child.pid}\n`);
      const err = await new FileStorage(new NodeDisk(tmp.dir)).open().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataDirLockedError);
      expect(err).toMatchObject({ pid: child.pid });
      const message = (err as Error).message;
      expect(message).toContain(tmp.dir);
      expect(message).toContain(`process ${child.pid}`);
      expect(message).toMatch(/Stop that process or give this node another dataDir/);
    } finally {
      child.kill();
    }
  });

  it('takes over a stale lock whose process is gone', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number;
    fs.writeFileSync(path.join(tmp.dir, 'LOCK'), `${dead}\n`);
    const storage = new FileStorage(new NodeDisk(tmp.dir));
    await storage.open();
    expect(fs.readFileSync(path.join(tmp.dir, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
    await storage.persist(batch({ entries: entries(1, 2, 1) }));
    await storage.close();
  });

  it('takes over a lock with our own pid that this process does not hold (restart as the same pid)', async () => {
    fs.writeFileSync(path.join(tmp.dir, 'LOCK'), `${process.pid}\n`);
    const storage = new FileStorage(new NodeDisk(tmp.dir));
    await storage.open();
    await storage.close();
  });

  it('auto io writes a small append on the event loop thread and a large one in the threadpool', async () => {
    const disk = new NodeDisk(tmp.dir);
    expect(disk.io).toBe('auto');
    const file = await disk.openAppend('f');
    const small = file.append(Buffer.alloc(200, 1));
    expect(file.size).toBe(200); // written before append() returned
    await small;
    const large = file.append(Buffer.alloc(64 * 1024, 2));
    expect(file.size).toBe(200); // handed to a pool thread
    await large;
    expect(file.size).toBe(200 + 64 * 1024);
    await file.close();
    expect(fs.statSync(path.join(tmp.dir, 'f')).size).toBe(200 + 64 * 1024);
  });

  it('auto io sends a small append to the threadpool while another file of the disk is being written', async () => {
    const disk = new NodeDisk(tmp.dir);
    const image = await disk.openAppend('image');
    const wal = await disk.openAppend('wal');
    const big = image.append(Buffer.alloc(1024 * 1024, 3)); // in a pool thread
    const small = wal.append(Buffer.alloc(100, 4));
    expect(wal.size).toBe(0); // not written on the loop: it would wait behind the image in the journal
    await Promise.all([big, small]);
    expect(wal.size).toBe(100);
    // The disk is idle again: appends come back to the loop once the slow contended one has left the average.
    let onLoop = false;
    for (let i = 0; i < 100 && !onLoop; i++) {
      const before = wal.size;
      const next = wal.append(Buffer.alloc(100, 5));
      onLoop = wal.size === before + 100;
      await next;
    }
    expect(onLoop).toBe(true);
    await Promise.all([image.close(), wal.close()]);
  });

  const modes: NodeDiskOptions[] = [
    { durability: 'dsync', io: 'auto' },
    { durability: 'dsync', io: 'threadpool' },
    { durability: 'fdatasync', io: 'threadpool' },
    { durability: 'dsync', io: 'blocking' },
    { durability: 'fdatasync', io: 'blocking' },
  ];
  it.each(modes)('persists, cuts a torn tail and recovers with %o', async (mode) => {
    const dir = path.join(tmp.dir, 'data');
    const a = new FileStorage(new NodeDisk(dir, mode), { segmentBytes: 2048 });
    await a.open();
    for (let i = 1; i <= 40; i += 4) {
      await a.persist(batch({ entries: entries(i, i + 3, 1, 100), hardState: { term: 1, vote: 'n1', commit: i } }));
    }
    await a.close();
    const segments = fs.readdirSync(path.join(dir, 'wal'));
    expect(segments.length).toBeGreaterThan(1);
    const last = path.join(dir, 'wal', segments.at(-1) as string);
    const seal = sealBatch(Buffer.alloc(0)).length;
    fs.truncateSync(last, fs.statSync(last).size - seal - 3); // tear the final hard state record (the seal follows it)
    const b = new FileStorage(new NodeDisk(dir, mode), { segmentBytes: 2048 });
    const state = await b.open();
    expect(plain(state.entries)).toEqual(plain(entries(1, 40, 1, 100)));
    expect(state.hardState).toEqual({ term: 1, vote: 'n1', commit: 33 });
    await b.persist(batch({ entries: entries(41, 41, 2), hardState: { term: 2, vote: 'n2', commit: 40 } }));
    await b.close();
    const c = new FileStorage(new NodeDisk(dir, mode));
    const again = await c.open();
    expect(plain(again.entries)).toEqual(plain([...entries(1, 40, 1, 100), ...entries(41, 41, 2)]));
    expect(again.hardState).toEqual({ term: 2, vote: 'n2', commit: 40 });
    await c.close();
  });

  it('maps full-disk, permission and read-only errors to StorageErrors with the path and a hint', () => {
    const cases: [string, RegExp][] = [
      ['ENOSPC', /disk is full/],
      ['EACCES', /permission denied/],
      ['EROFS', /read-only/],
    ];
    for (const [code, hint] of cases) {
      const raw = Object.assign(new Error(`${code}: raw`), { code });
      const err = toStorageError(raw, 'write', '/data/wal/x.wal');
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ code, path: '/data/wal/x.wal', cause: raw });
      expect((err as Error).message).toMatch(hint);
      expect((err as Error).message).toContain('/data/wal/x.wal');
    }
    const other = Object.assign(new Error('ENOENT: raw'), { code: 'ENOENT' });
    expect(toStorageError(other, 'read', '/x')).toBe(other);
  });

  it('reports a real I/O failure with the path instead of swallowing it', async () => {
    fs.writeFileSync(path.join(tmp.dir, 'wal'), 'a file where a directory should be');
    const err = await new FileStorage(new NodeDisk(tmp.dir)).open().catch((e: unknown) => e);
    expect((err as Error).message).toContain(path.join(tmp.dir, 'wal'));
    // The failed open released the lock.
    expect(fs.existsSync(path.join(tmp.dir, 'LOCK'))).toBe(false);
  });
});
