import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AppendFile, Disk, DiskLock } from '../../lib/storage/disk.js';
import { toStorageError } from '../../lib/storage/errors.js';
import { NodeDisk, type NodeDiskOptions } from '../../lib/storage/node-disk.js';

/**
 * A real directory (NodeDisk) with a size limit, as a small file system or a quota would have: the files under the
 * root may hold at most `capacity` bytes. An append that does not fit writes the bytes that do — real bytes into the
 * real file, as write(2) does on a file system that fills up mid-write — and then fails with ENOSPC. Freeing space is
 * raising `capacity` (or deleting files). `failSyncs` makes the next syncs fail with ENOSPC, as fdatasync can on thin
 * provisioned or network storage; `failTruncates` makes truncates fail with EIO, to break a rollback.
 */
export class QuotaDisk implements Disk {
  readonly inner: NodeDisk;
  capacity = Number.POSITIVE_INFINITY;
  failSyncs = 0;
  failTruncates = 0;
  /** Appends refused (fully or in part) for lack of space. */
  refusals = 0;

  constructor(
    readonly root: string,
    options: NodeDiskOptions = {},
  ) {
    this.inner = new NodeDisk(root, options);
  }

  /** Bytes in every file under the root. */
  used(): number {
    let total = 0;
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else total += fs.statSync(p).size;
      }
    };
    walk(this.root);
    return total;
  }

  /** Leaves exactly `bytes` free from now on. */
  leaveFree(bytes: number): void {
    this.capacity = this.used() + bytes;
  }

  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }

  list(dir: string): Promise<string[]> {
    return this.inner.list(dir);
  }

  readFile(file: string): Promise<Uint8Array | null> {
    return this.inner.readFile(file);
  }

  async openAppend(file: string): Promise<AppendFile> {
    return new QuotaFile(this, await this.inner.openAppend(file), path.join(this.root, file));
  }

  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }

  unlink(file: string): Promise<void> {
    return this.inner.unlink(file);
  }

  syncDir(dir: string): Promise<void> {
    return this.inner.syncDir(dir);
  }

  lock(file: string): Promise<DiskLock> {
    return this.inner.lock(file);
  }
}

class QuotaFile implements AppendFile {
  constructor(
    private readonly disk: QuotaDisk,
    private readonly file: AppendFile,
    private readonly abs: string,
  ) {}

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.file.size;
  }

  async append(data: Uint8Array): Promise<void> {
    const room = Math.max(0, this.disk.capacity - this.disk.used());
    if (data.byteLength <= room) return this.file.append(data);
    this.disk.refusals++;
    if (room > 0) await this.file.append(data.subarray(0, room));
    throw failure('ENOSPC', 'write', this.abs);
  }

  async sync(): Promise<void> {
    if (this.disk.failSyncs > 0) {
      this.disk.failSyncs--;
      throw failure('ENOSPC', 'fdatasync', this.abs);
    }
    return this.file.sync();
  }

  async truncate(length: number): Promise<void> {
    if (this.disk.failTruncates > 0) {
      this.disk.failTruncates--;
      throw failure('EIO', 'truncate', this.abs);
    }
    return this.file.truncate(length);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** A system error as node:fs raises it, mapped the way NodeDisk maps real ones. */
function failure(code: string, op: string, abs: string): unknown {
  return toStorageError(Object.assign(new Error(`${code}: ${op} '${abs}' (quota)`), { code }), op, abs);
}
