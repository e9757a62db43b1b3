import { DataDirLockedError, StorageError } from '../../lib/storage/errors.js';
import { SimDisk } from '../support/sim-disk.js';
import { rng } from './helpers.js';

const text = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString());

async function write(disk: SimDisk, path: string, parts: string[], syncAfter: number): Promise<void> {
  const f = await disk.openAppend(path);
  for (const [i, part] of parts.entries()) {
    await f.append(Buffer.from(part));
    if (i + 1 === syncAfter) await f.sync();
  }
}

describe('SimDisk', () => {
  it('keeps synced bytes and a prefix of unsynced ones across a crash, tearing writes at any byte', async () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      let disk = new SimDisk();
      await disk.mkdir('d');
      await write(disk, 'd/f', ['synced-', 'AAAA', 'BBBB'], 1);
      await disk.syncDir('d');
      disk = disk.crash(rng(seed));
      const after = text(await disk.readFile('d/f')) as string;
      // The last write that reached the disk may be cut short, or present in length with its sector still zero.
      const written = after.replace(/\0+$/, '');
      expect('synced-AAAABBBB'.startsWith(written)).toBe(true);
      expect(after.startsWith('synced-')).toBe(true);
      seen.add(after);
    }
    // Nothing lost, everything lost, cuts inside each write, and a write whose sector never arrived all happen.
    expect(seen).toContain('synced-');
    expect(seen).toContain('synced-AAAABBBB');
    expect([...seen].some((s) => s.endsWith('\0'))).toBe(true);
    expect([...seen].some((s) => s.length > 7 && s.length < 11)).toBe(true);
    expect([...seen].some((s) => s.length > 11 && s.length < 15)).toBe(true);
  });

  it('is deterministic for a given rng', async () => {
    const run = async (seed: number): Promise<string | null> => {
      let disk = new SimDisk();
      await write(disk, 'f', ['a', 'bcdefgh', 'ijklmnop'], 1);
      await disk.syncDir('');
      disk = disk.crash(rng(seed));
      return text(await disk.readFile('f'));
    };
    for (let seed = 1; seed < 20; seed++) expect(await run(seed)).toBe(await run(seed));
  });

  it('rolls back file creation, rename and unlink that no syncDir made durable', async () => {
    let disk = new SimDisk();
    await disk.mkdir('snap');
    await write(disk, 'snap/a', ['A'], 1);
    await write(disk, 'snap/b', ['B'], 1);
    await disk.syncDir('snap');
    await write(disk, 'snap/new', ['N'], 1);
    await disk.rename('snap/a', 'snap/a2');
    await disk.unlink('snap/b');
    expect(await disk.list('snap')).toEqual(['a2', 'new']);
    disk = disk.crash(rng(1));
    expect(await disk.list('snap')).toEqual(['a', 'b']);
    expect(text(await disk.readFile('snap/a'))).toBe('A');

    await disk.rename('snap/a', 'snap/a2');
    await disk.unlink('snap/b');
    await disk.syncDir('snap');
    disk = disk.crash(rng(2));
    expect(await disk.list('snap')).toEqual(['a2']);
  });

  it('a pending truncate may or may not survive, never a mix', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 50; seed++) {
      let disk = new SimDisk();
      const f = await disk.openAppend('f');
      await f.append(Buffer.from('0123456789'));
      await f.sync();
      await disk.syncDir('');
      await f.truncate(4);
      await f.append(Buffer.from('xy'));
      disk = disk.crash(rng(seed));
      outcomes.add(text(await disk.readFile('f')) as string);
    }
    // '0123\0\0': the append's sector never reached the disk, though the file's new length did.
    expect([...outcomes].sort()).toEqual(['0123', '0123\0\0', '0123456789', '0123x', '0123xy']);
  });

  it('kills the crashed process: its SimDisk and handles throw, its locks are released', async () => {
    const disk = new SimDisk('node-x');
    const lock = await disk.lock('LOCK');
    await expect(disk.lock('LOCK')).rejects.toBeInstanceOf(DataDirLockedError);
    const f = await disk.openAppend('f');
    const after = disk.crash(rng(1));
    await expect(f.append(Buffer.from('late'))).rejects.toThrow(/before a crash/);
    await expect(disk.list('')).rejects.toThrow(/after a crash/);
    await lock.release(); // a dead process's release changes nothing
    const again = await after.lock('LOCK');
    await again.release();
  });

  it('injects write and sync failures', async () => {
    const disk = new SimDisk();
    const f = await disk.openAppend('f');
    disk.failNextWrites(2);
    await expect(f.append(Buffer.from('x'))).rejects.toBeInstanceOf(StorageError);
    await expect(f.append(Buffer.from('x'))).rejects.toMatchObject({ code: 'ENOSPC' });
    await f.append(Buffer.from('ok'));
    disk.failNextSyncs(1, 'EIO');
    await expect(f.sync()).rejects.toMatchObject({ code: 'EIO' });
    await f.sync();
    expect(text(await disk.readFile('f'))).toBe('ok');
  });

  it('flips bits in durable bytes; clones are independent', async () => {
    const disk = new SimDisk();
    await write(disk, 'f', ['abc'], 1);
    const copy = disk.clone();
    disk.corrupt('f', 1, 0);
    expect(text(await disk.readFile('f'))).toBe('acc');
    expect(text(await copy.readFile('f'))).toBe('abc');
    expect(() => disk.corrupt('f', 3)).toThrow(/not in the durable/);
  });
});
