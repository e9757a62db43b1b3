import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AppendFile, Disk, DiskLock } from './disk.js';
import { DataDirLockedError, errnoCode, toStorageError } from './errors.js';

/** Lock files this process holds, by absolute path: a second storage on the same dataDir in one process is refused. */
const heldLocks = new Set<string>();

/**
 * How appends are made durable.
 * - `dsync`: files are opened with O_DSYNC, so each write(2) returns only once its data (and the size needed to
 *   read it) are on stable storage, exactly what fdatasync guarantees. A batch then costs one system call and one
 *   threadpool hop instead of two, and `sync()` only has to fdatasync after a truncate. Default where the platform
 *   has O_DSYNC (Linux, macOS).
 * - `fdatasync`: plain writes, and `sync()` calls fdatasync(2). Default elsewhere (Windows).
 */
export type Durability = 'dsync' | 'fdatasync';

/**
 * Where appends and syncs run.
 * - `auto` (default): a small append (≤ 4 KiB: one write or a few, what a lone writer produces) is written on the
 *   event loop thread while recent writes took under a millisecond and nothing else of this disk's is under way in
 *   the threadpool; anything larger, any append while another file is being written or synced (a snapshot image:
 *   the journal makes a small synced write wait for it, 15–22 ms measured), or any append once the disk is slower,
 *   goes to the threadpool. The hand-off to a pool thread and back costs about 90 µs per batch
 *   here, half the disk's own time; blocking for a fast small write is cheaper than that, and a slow disk never
 *   blocks the loop for long.
 * - `threadpool`: libuv's threadpool always; the event loop keeps serving the network and timers during every write.
 * - `blocking`: write(2)/fdatasync(2) on the event loop thread always, as a bare synchronous loop would. The process
 *   does nothing else while the disk works (up to milliseconds on slow disks).
 */
export type IoMode = 'auto' | 'threadpool' | 'blocking';

/** `auto`: appends up to this size may block, and only while the recent write time stays below BLOCKING_MAX_US. */
const SMALL_APPEND_BYTES = 4096;
const BLOCKING_MAX_US = 1000;

export interface NodeDiskOptions {
  readonly durability?: Durability;
  readonly io?: IoMode;
}

/**
 * Disk over node:fs. Appends, syncs and truncates use the callback API (one threadpool hop each, no promise
 * wrapper objects); errors an operator must act on (ENOSPC, EACCES, EROFS, ...) become StorageErrors naming the
 * absolute path.
 */
export class NodeDisk implements Disk {
  readonly root: string;
  readonly durability: Durability;
  readonly io: IoMode;
  /** Threadpool operations of this disk under way: `auto` blocks the loop only when there are none. */
  private readonly busy: PoolCount = { ops: 0 };

  constructor(root: string, options: NodeDiskOptions = {}) {
    this.root = path.resolve(root);
    this.io = options.io ?? 'auto';
    const dsync = fs.constants.O_DSYNC;
    this.durability = options.durability ?? (dsync === undefined ? 'fdatasync' : 'dsync');
    if (this.durability === 'dsync' && dsync === undefined) throw new Error('O_DSYNC is not available on this platform');
  }

  /**
   * Creates the directory and any missing parents, and makes each creation durable: a new directory is an entry in
   * its parent, so every parent that gained one is fsynced (else a power cut could lose the directory, and the files
   * later synced inside it, although their own fsyncs succeeded).
   */
  async mkdir(dir: string): Promise<void> {
    const abs = this.abs(dir);
    const first = await io('create directory', abs, () => fs.promises.mkdir(abs, { recursive: true }));
    if (first === undefined) return; // it existed
    for (let d = abs; ; d = path.dirname(d)) {
      await this.syncAbs(path.dirname(d));
      if (d === path.resolve(first) || d === path.dirname(d)) break;
    }
  }

  async list(dir: string): Promise<string[]> {
    const abs = this.abs(dir);
    try {
      return (await fs.promises.readdir(abs)).sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw toStorageError(err, 'list', abs);
    }
  }

  async readFile(file: string): Promise<Uint8Array | null> {
    const abs = this.abs(file);
    try {
      return await fs.promises.readFile(abs);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw toStorageError(err, 'read', abs);
    }
  }

  async openAppend(file: string): Promise<AppendFile> {
    const abs = this.abs(file);
    const { O_APPEND, O_CREAT, O_WRONLY, O_DSYNC } = fs.constants;
    const dsync = this.durability === 'dsync';
    const flags = O_APPEND | O_CREAT | O_WRONLY | (dsync ? O_DSYNC : 0);
    const fd = await io('open', abs, () => callback<number>((cb) => fs.open(abs, flags, 0o644, cb)));
    try {
      const stat = await io('stat', abs, () => callback<fs.Stats>((cb) => fs.fstat(fd, cb)));
      return new NodeAppendFile(file, abs, fd, stat.size, dsync, this.io, this.busy);
    } catch (err) {
      fs.close(fd, () => undefined);
      throw err;
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const abs = this.abs(from);
    await io('rename', abs, () => pooled(this.busy, fs.promises.rename(abs, this.abs(to))));
  }

  async unlink(file: string): Promise<void> {
    const abs = this.abs(file);
    await io('delete', abs, () => pooled(this.busy, fs.promises.unlink(abs)));
  }

  async syncDir(dir: string): Promise<void> {
    await this.syncAbs(this.abs(dir));
  }

  private async syncAbs(abs: string): Promise<void> {
    await io('sync directory', abs, () =>
      pooled(
        this.busy,
        (async () => {
          const handle = await fs.promises.open(abs, 'r');
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
        })(),
      ),
    );
  }

  /**
   * Lock file holding our pid. It is published with link(2) from a fully written temp file, so it never appears
   * empty to a process starting at the same moment (a plain `wx` create would show an empty file until the pid is
   * written); where link is unsupported it falls back to an exclusive (`wx`) create. A lock whose pid is not a
   * live process, or is our own pid but not held by this process (a container restarting as pid 1), is stale and
   * taken over. Caveat: a dead holder's pid reused by an unrelated process looks alive; the error says what to do.
   */
  async lock(file: string): Promise<DiskLock> {
    const abs = this.abs(file);
    if (heldLocks.has(abs)) throw new DataDirLockedError(this.root, abs, process.pid);
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await this.tryCreateLock(abs)) {
        heldLocks.add(abs);
        return {
          release: async () => {
            heldLocks.delete(abs);
            await io('delete lock file', abs, () => fs.promises.unlink(abs));
          },
        };
      }
      const holder = await readPid(abs);
      if (holder !== null && holder !== process.pid && isAlive(holder)) throw new DataDirLockedError(this.root, abs, holder);
      // Stale: its holder is gone. Remove it and race for it again.
      await fs.promises.unlink(abs).catch((err: unknown) => {
        if (errnoCode(err) !== 'ENOENT') throw toStorageError(err, 'delete stale lock file', abs);
      });
    }
    throw new DataDirLockedError(this.root, abs, await readPid(abs));
  }

  private async tryCreateLock(abs: string): Promise<boolean> {
    const content = `${process.pid}\n`;
    const tmp = `${abs}.${process.pid}.tmp`;
    await io('create lock file', tmp, () => fs.promises.writeFile(tmp, content));
    try {
      await fs.promises.link(tmp, abs);
      return true;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') {
        throw toStorageError(err, 'create lock file', abs);
      }
      try {
        await fs.promises.writeFile(abs, content, { flag: 'wx' });
        return true;
      } catch (err2) {
        if (errnoCode(err2) === 'EEXIST') return false;
        throw toStorageError(err2, 'create lock file', abs);
      }
    } finally {
      await fs.promises.unlink(tmp).catch(() => undefined); // only a leftover name; the lock result stands
    }
  }

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }
}

class NodeAppendFile implements AppendFile {
  /** With O_DSYNC, writes are durable on return; only a truncate leaves something for sync() to do. */
  private unsynced: boolean;
  /** `auto`: a moving average of the time appends took (µs), on either path; it decides whether small ones block. */
  private writeUs = 0;

  constructor(
    readonly path: string,
    private readonly abs: string,
    private readonly fd: number,
    private length: number,
    private readonly dsync: boolean,
    private readonly io: IoMode,
    private readonly busy: PoolCount,
  ) {
    this.unsynced = !dsync;
  }

  private get blocking(): boolean {
    return this.io === 'blocking';
  }

  get size(): number {
    return this.length;
  }

  append(data: Uint8Array): Promise<void> {
    if (this.blocking) return this.appendBlocking(data);
    const auto = this.io === 'auto';
    if (auto && data.byteLength <= SMALL_APPEND_BYTES && this.writeUs < BLOCKING_MAX_US && this.busy.ops === 0) {
      const t0 = performance.now();
      const done = this.appendBlocking(data);
      this.timed(t0);
      return done;
    }
    const t0 = auto ? performance.now() : 0;
    const written = new Promise<void>((resolve, reject) => {
      const write = (from: number): void => {
        fs.write(this.fd, data, from, data.byteLength - from, null, (err, n) => {
          if (err) return reject(toStorageError(err, 'write', this.abs));
          this.length += n;
          if (from + n < data.byteLength) return write(from + n);
          if (auto) this.timed(t0);
          resolve();
        });
      };
      if (data.byteLength === 0) resolve();
      else write(0);
    });
    return pooled(this.busy, written);
  }

  async sync(): Promise<void> {
    if (!this.unsynced) return;
    if (this.blocking) {
      try {
        fs.fdatasyncSync(this.fd);
      } catch (err) {
        throw toStorageError(err, 'fdatasync', this.abs);
      }
    } else {
      await io('fdatasync', this.abs, () => pooled(this.busy, callback<void>((cb) => fs.fdatasync(this.fd, cb))));
    }
    this.unsynced = !this.dsync;
  }

  async truncate(length: number): Promise<void> {
    this.unsynced = true;
    await io('truncate', this.abs, () => callback<void>((cb) => fs.ftruncate(this.fd, length, cb)));
    this.length = length;
  }

  close(): Promise<void> {
    return io('close', this.abs, () => callback<void>((cb) => fs.close(this.fd, cb)));
  }

  /** Folds one append's duration into the average; a pool write's includes the hand-off, so the bound is generous. */
  private timed(t0: number): void {
    const us = (performance.now() - t0) * 1000;
    this.writeUs = this.writeUs === 0 ? us : this.writeUs * 0.8 + us * 0.2;
  }

  private async appendBlocking(data: Uint8Array): Promise<void> {
    try {
      for (let from = 0; from < data.byteLength; ) {
        const written = fs.writeSync(this.fd, data, from, data.byteLength - from);
        this.length += written;
        from += written;
      }
    } catch (err) {
      throw toStorageError(err, 'write', this.abs);
    }
  }
}

async function io<T>(op: string, abs: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toStorageError(err, op, abs);
  }
}

interface PoolCount {
  ops: number;
}

/** Counts `op` as under way in the threadpool until it settles. */
function pooled<T>(count: PoolCount, op: Promise<T>): Promise<T> {
  count.ops++;
  const done = (): void => void count.ops--;
  op.then(done, done);
  return op;
}

function callback<T>(start: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value))));
}

async function readPid(abs: string): Promise<number | null> {
  try {
    const pid = Number.parseInt(await fs.promises.readFile(abs, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null; // gone or unreadable: treated as stale, the create that follows decides
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM'; // exists, owned by another user
  }
}
