import type { AppendFile, Disk, DiskLock } from '../../lib/storage/disk.js';
import { DataDirLockedError, toStorageError } from '../../lib/storage/errors.js';

/** The platters: everything a crash does not wipe, shared by the SimDisk handed out before and after it. */
class Platter {
  files = new Map<string, SimFile>();
  durableFiles = new Map<string, SimFile>();
  dirs = new Set<string>(['']);
  readonly locks = new Set<string>();
  /** Bumped by every crash; a SimDisk (or file handle) from an earlier generation is dead. */
  generation = 0;
  failWrites = { count: 0, code: 'ENOSPC' };
  failSyncs = { count: 0, code: 'EIO' };
}

/**
 * A deterministic in-memory Disk for the simulator and storage tests. It models what a power cut can do:
 *
 * - File contents: bytes up to the last `sync()` are durable. Later appends and truncates are pending; a crash
 *   applies a random prefix of them in order, and may cut the last applied append anywhere (a torn write) or keep
 *   only a random subset of its 512-byte sectors, the rest zero (a write whose pages reached the disk out of order).
 * - Directory entries: creating, renaming or deleting a file changes the namespace at once, but only `syncDir` of
 *   its directory makes the change durable; a crash rolls back the rest. (Directories themselves are durable as
 *   soon as `mkdir` returns, to keep the model small.)
 * - Locks are released by a crash. The crash returns a new SimDisk for the restarted process; the old one and its
 *   file handles throw from then on, as the crashed process would never run again.
 *
 * Randomness comes only from the `rng` passed to `crash`, so a seed replays exactly.
 */
export class SimDisk implements Disk {
  private readonly platter: Platter;
  private readonly generation: number;

  /**
   * `name` stands for the dataDir in error messages. `platter` is internal: crash() and clone() pass the state the
   * new SimDisk works on; callers pass nothing and get an empty disk.
   */
  constructor(readonly name = 'sim', platter?: Platter) {
    this.platter = platter ?? new Platter();
    this.generation = this.platter.generation;
  }

  async mkdir(dir: string): Promise<void> {
    const { dirs } = this.live('mkdir');
    let d = norm(dir);
    while (d !== '' && !dirs.has(d)) {
      dirs.add(d);
      d = parentOf(d);
    }
  }

  async list(dir: string): Promise<string[]> {
    const { files, dirs } = this.live('list');
    const d = norm(dir);
    if (!dirs.has(d)) return [];
    const names: string[] = [];
    for (const p of [...files.keys(), ...dirs]) {
      if (p !== '' && parentOf(p) === d) names.push(baseOf(p));
    }
    return names.sort();
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    return this.live('read').files.get(norm(path))?.content().slice() ?? null;
  }

  async openAppend(path: string): Promise<AppendFile> {
    const { files } = this.live('open');
    const p = norm(path);
    let file = files.get(p);
    if (file === undefined) {
      this.needDir(parentOf(p), 'open');
      file = new SimFile();
      files.set(p, file);
    }
    return new SimAppendFile(this.platter, p, file, this.generation);
  }

  async rename(from: string, to: string): Promise<void> {
    const { files } = this.live('rename');
    const f = norm(from);
    const t = norm(to);
    const file = files.get(f);
    if (file === undefined) throw errno('ENOENT', 'rename', f);
    this.needDir(parentOf(t), 'rename');
    files.delete(f);
    files.set(t, file);
  }

  async unlink(path: string): Promise<void> {
    const p = norm(path);
    if (!this.live('unlink').files.delete(p)) throw errno('ENOENT', 'unlink', p);
  }

  async syncDir(dir: string): Promise<void> {
    const { files, durableFiles } = this.live('syncDir');
    const d = norm(dir);
    this.needDir(d, 'syncDir');
    for (const p of [...durableFiles.keys()]) if (parentOf(p) === d) durableFiles.delete(p);
    for (const [p, file] of files) if (parentOf(p) === d) durableFiles.set(p, file);
  }

  async lock(path: string): Promise<DiskLock> {
    const { locks } = this.live('lock');
    const p = norm(path);
    if (locks.has(p)) throw new DataDirLockedError(this.name, p, null);
    locks.add(p);
    return {
      release: async () => {
        if (this.generation === this.platter.generation) locks.delete(p);
      },
    };
  }

  /**
   * Power cut: the namespace reverts to its last synced state, each file keeps its durable bytes plus a random
   * prefix of its pending writes, and locks are released. Returns the disk as the restarted process sees it:
   * this SimDisk and every handle opened through it are dead from now on (every call throws), so work the crashed
   * process still had in flight cannot touch the disk after the crash.
   */
  crash(rng: () => number): SimDisk {
    const platter = this.live('crash');
    platter.generation++;
    platter.locks.clear();
    platter.files = new Map(platter.durableFiles);
    const seen = new Set<SimFile>();
    for (const file of platter.files.values()) {
      if (seen.has(file)) continue;
      seen.add(file);
      file.crash(rng);
    }
    return new SimDisk(this.name, platter);
  }

  /** The next `n` appends fail with `code` and write nothing. */
  failNextWrites(n: number, code = 'ENOSPC'): void {
    this.live('failNextWrites').failWrites = { count: n, code };
  }

  /** The next `n` syncs fail with `code`; what they should have made durable stays pending (a crash may lose it). */
  failNextSyncs(n: number, code = 'EIO'): void {
    this.live('failNextSyncs').failSyncs = { count: n, code };
  }

  /** Flips one bit (`bit`, default 0) of the byte at `offset` of the file's durable contents, as bit rot would. */
  corrupt(path: string, offset: number, bit = 0): void {
    const file = this.live('corrupt').files.get(norm(path));
    if (file === undefined) throw new Error(`SimDisk.corrupt: no file ${path}`);
    file.flip(offset, bit);
  }

  /** An independent copy of the whole disk (current and durable state), e.g. to try many crashes of one state. */
  clone(): SimDisk {
    const from = this.live('clone');
    const to = new Platter();
    const copies = new Map<SimFile, SimFile>();
    const dup = (f: SimFile): SimFile => {
      let c = copies.get(f);
      if (c === undefined) copies.set(f, (c = f.clone()));
      return c;
    };
    for (const [p, f] of from.files) to.files.set(p, dup(f));
    for (const [p, f] of from.durableFiles) to.durableFiles.set(p, dup(f));
    to.dirs = new Set(from.dirs);
    return new SimDisk(this.name, to);
  }

  /** Current size of a file, or null when it does not exist. */
  sizeOf(path: string): number | null {
    return this.live('sizeOf').files.get(norm(path))?.size ?? null;
  }

  /** The platter, if this SimDisk has not died in a crash. */
  private live(op: string): Platter {
    if (this.generation !== this.platter.generation) {
      throw new Error(`SimDisk: ${op} after a crash; use the SimDisk that crash() returned`);
    }
    return this.platter;
  }

  private needDir(dir: string, op: string): void {
    if (!this.platter.dirs.has(dir)) throw errno('ENOENT', op, dir);
  }
}

type PendingOp = { readonly kind: 'append'; readonly data: Uint8Array } | { readonly kind: 'truncate'; readonly length: number };

/** One file's bytes: current contents, the durable prefix and the pending writes in between. */
class SimFile {
  private buf = new Uint8Array(256);
  private len = 0;
  private durableLen = 0;
  /** Durable bytes, kept apart only while a pending truncate has cut into them. */
  private durableCopy: Uint8Array | null = null;
  private pending: PendingOp[] = [];

  get size(): number {
    return this.len;
  }

  content(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  append(data: Uint8Array): void {
    this.pending.push({ kind: 'append', data: data.slice() });
    this.write(data);
  }

  truncate(length: number): void {
    if (length < this.durableLen && this.durableCopy === null) this.durableCopy = this.buf.slice(0, this.durableLen);
    this.pending.push({ kind: 'truncate', length });
    this.resize(length);
  }

  sync(): void {
    this.durableLen = this.len;
    this.durableCopy = null;
    this.pending = [];
  }

  crash(rng: () => number): void {
    const durable = (this.durableCopy ?? this.buf.subarray(0, this.durableLen)).slice();
    const ops = this.pending;
    const applied = Math.floor(rng() * (ops.length + 1));
    this.buf = new Uint8Array(Math.max(256, durable.length));
    this.len = 0;
    this.write(durable);
    for (let i = 0; i < ops.length && i <= applied; i++) {
      const op = ops[i] as PendingOp;
      if (op.kind === 'truncate') {
        if (i < applied) this.resize(op.length);
      } else if (i < applied) {
        this.write(op.data);
      } else if (rng() < 0.5) {
        this.write(op.data.subarray(0, Math.floor(rng() * (op.data.length + 1)))); // torn: cut short
      } else {
        this.write(scatter(op.data, rng)); // torn and reordered: some sectors reached the disk, others not
      }
    }
    this.sync();
  }

  flip(offset: number, bit: number): void {
    const durable = this.durableCopy ?? this.buf;
    const limit = this.durableCopy?.length ?? this.durableLen;
    if (offset < 0 || offset >= limit) throw new Error(`SimDisk.corrupt: offset ${offset} is not in the durable ${limit} bytes`);
    durable[offset] = (durable[offset] ?? 0) ^ (1 << bit);
  }

  clone(): SimFile {
    const c = new SimFile();
    c.buf = this.buf.slice();
    c.len = this.len;
    c.durableLen = this.durableLen;
    c.durableCopy = this.durableCopy?.slice() ?? null;
    c.pending = [...this.pending];
    return c;
  }

  private write(data: Uint8Array): void {
    this.reserve(this.len + data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  private resize(length: number): void {
    this.reserve(length);
    if (length > this.len) this.buf.fill(0, this.len, length);
    this.len = length;
  }

  private reserve(capacity: number): void {
    if (capacity <= this.buf.length) return;
    const next = new Uint8Array(Math.max(capacity, this.buf.length * 2));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

class SimAppendFile implements AppendFile {
  private closed = false;

  constructor(
    private readonly platter: Platter,
    readonly path: string,
    private readonly file: SimFile,
    private readonly generation: number,
  ) {}

  get size(): number {
    return this.file.size;
  }

  async append(data: Uint8Array): Promise<void> {
    this.check('write');
    const fault = takeFault(this.platter.failWrites);
    if (fault !== null) throw errno(fault, 'write', this.path);
    this.file.append(data);
  }

  async sync(): Promise<void> {
    this.check('fdatasync');
    const fault = takeFault(this.platter.failSyncs);
    if (fault !== null) throw errno(fault, 'fdatasync', this.path);
    this.file.sync();
  }

  async truncate(length: number): Promise<void> {
    this.check('truncate');
    this.file.truncate(length);
  }

  async close(): Promise<void> {
    this.check('close');
    this.closed = true;
  }

  private check(op: string): void {
    if (this.generation !== this.platter.generation) throw new Error(`SimDisk: ${op} ${this.path} on a handle opened before a crash`);
    if (this.closed) throw errno('EBADF', op, this.path);
  }
}

const SECTOR = 512;

/**
 * A write whose sectors reached the disk in no particular order before the power went: each sector is there or
 * still zero. Only the write being made when the crash hit can look like this; every earlier one was synced.
 */
function scatter(data: Uint8Array, rng: () => number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let at = 0; at < data.length; at += SECTOR) {
    if (rng() < 0.5) out.set(data.subarray(at, Math.min(at + SECTOR, data.length)), at);
  }
  return out;
}

/** Consumes one injected fault, if any. */
function takeFault(fault: { count: number; code: string }): string | null {
  if (fault.count <= 0) return null;
  fault.count--;
  return fault.code;
}

/** A system-style error with `code`, mapped like NodeDisk maps real ones. */
function errno(code: string, op: string, path: string): unknown {
  const err = Object.assign(new Error(`${code}: ${op} ${path} (simulated)`), { code });
  return toStorageError(err, op, path);
}

function norm(path: string): string {
  return path
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
