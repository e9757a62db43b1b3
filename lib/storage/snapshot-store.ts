import type { Snapshot } from '../raft/types.js';
import { allocBytes } from '../io/large-bytes.js';
import type { Disk } from './disk.js';
import { settleFailedWrite } from './disk-full.js';
import { errnoCode } from './errors.js';
import { decodeSnapshot, encodeSnapshotParts } from './snapshot-file.js';

/** A snapshot file found in snap/, named `<index>-<term>.snap`, both zero-padded to 16 digits. */
export interface SnapshotFileInfo {
  /** Path relative to the dataDir (`snap/...`). */
  readonly path: string;
  readonly index: number;
  readonly term: number;
}

const NAME = /^(\d{16})-(\d{16})\.snap$/;
const TMP_SUFFIX = '.tmp';
/**
 * A snapshot's data goes to its file this many bytes per write. Each write is synced (O_DSYNC), and the WAL's small
 * synced writes queue behind it in the device and the ext4 journal: behind one write of the whole image (10 MB at 200k
 * keys) a WAL write, made on the event loop when the disk has been fast, waited tens of ms.
 */
const WRITE_STEP = 256 * 1024;
/** Between the steps of a large snapshot's checksum: lets the event loop run. Small snapshots never pause. */
const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Suffix given to a damaged snapshot that was skipped, so it is kept for inspection but never read again. */
export const CORRUPT_SUFFIX = '.corrupt';

export function snapshotFileName(index: number, term: number): string {
  return `${String(index).padStart(16, '0')}-${String(term).padStart(16, '0')}.snap`;
}

/**
 * The snapshot directory. Files appear atomically: written to `<name>.tmp`, synced, renamed, directory synced, so
 * a crash leaves either the old set of snapshots or the new one, plus at most a .tmp file removed at the next open.
 */
export class SnapshotStore {
  constructor(
    private readonly disk: Disk,
    private readonly dir = 'snap',
  ) {}

  /** Creates the directory and removes .tmp files a crash left behind. */
  async prepare(): Promise<string[]> {
    await this.disk.mkdir(this.dir);
    const leftovers = (await this.disk.list(this.dir)).filter((n) => n.endsWith(TMP_SUFFIX));
    for (const name of leftovers) await this.disk.unlink(`${this.dir}/${name}`);
    if (leftovers.length > 0) await this.disk.syncDir(this.dir);
    return leftovers.map((n) => `${this.dir}/${n}`);
  }

  /** Snapshot files, newest (highest index, then term) first; `ignored` lists names that are not snapshots. */
  async list(): Promise<{ files: SnapshotFileInfo[]; ignored: string[] }> {
    const files: SnapshotFileInfo[] = [];
    const ignored: string[] = [];
    for (const name of await this.disk.list(this.dir)) {
      const m = NAME.exec(name);
      if (m) files.push({ path: `${this.dir}/${name}`, index: Number(m[1]), term: Number(m[2]) });
      else if (!name.endsWith(CORRUPT_SUFFIX)) ignored.push(`${this.dir}/${name}`);
    }
    files.sort((a, b) => b.index - a.index || b.term - a.term);
    return { files, ignored };
  }

  /**
   * Reads and checks one snapshot: the snapshot, or why it is damaged. Throws UnsupportedFormatError for a file
   * of another format.
   */
  async read(info: SnapshotFileInfo): Promise<Snapshot | string> {
    const bytes = await this.disk.readFile(info.path);
    if (bytes === null) return 'file vanished';
    const snap = decodeSnapshot(bytes, info.path);
    if (typeof snap === 'string') return snap;
    if (snap.meta.index !== info.index || snap.meta.term !== info.term) {
      return `contents say index ${snap.meta.index} term ${snap.meta.term}, which does not match the file name`;
    }
    return snap;
  }

  /**
   * Writes a snapshot durably; resolves once the file and its directory entry are synced. When the disk fills up
   * while the temp file is written, the temp file is deleted again to give the space back (DiskFullError).
   */
  async save(snapshot: Snapshot): Promise<SnapshotFileInfo> {
    const name = snapshotFileName(snapshot.meta.index, snapshot.meta.term);
    const path = `${this.dir}/${name}`;
    const tmp = path + TMP_SUFFIX;
    const [head, data] = await encodeSnapshotParts(snapshot, yieldToLoop);
    try {
      await this.writeFile(tmp, head, data);
    } catch (err) {
      throw await settleFailedWrite(err, () =>
        this.disk.unlink(tmp).catch((e: unknown) => {
          if (errnoCode(e) !== 'ENOENT') throw e;
        }),
      );
    }
    await this.disk.rename(tmp, path);
    await this.disk.syncDir(this.dir);
    return { path, index: snapshot.meta.index, term: snapshot.meta.term };
  }

  /**
   * Writes the file's two parts and syncs it (the first half of a durable replace); a file left by a write that a
   * crash interrupted is emptied first. The data goes in steps of WRITE_STEP bytes, the first one behind the head in
   * the same write: a write of the head alone is small enough for the disk to make on the event loop, and the first
   * write to a new file is a slow one.
   */
  private async writeFile(path: string, head: Uint8Array, data: Uint8Array): Promise<void> {
    const file = await this.disk.openAppend(path);
    try {
      if (file.size > 0) await file.truncate(0);
      const first = Math.min(data.byteLength, WRITE_STEP);
      const opening = allocBytes(head.byteLength + first);
      opening.set(head);
      opening.set(data.subarray(0, first), head.byteLength);
      await file.append(opening);
      for (let at = first; at < data.byteLength; at += WRITE_STEP) await file.append(data.subarray(at, at + WRITE_STEP));
      await file.sync();
    } finally {
      await file.close();
    }
  }

  /** Deletes a snapshot this process just saved and may not keep (its WAL marker could not be written). */
  async remove(info: SnapshotFileInfo): Promise<void> {
    await this.disk.unlink(info.path);
    await this.disk.syncDir(this.dir);
  }

  /** Sets a damaged snapshot aside (renamed with .corrupt) so it is neither read nor counted again. */
  async quarantine(info: SnapshotFileInfo): Promise<string> {
    const to = info.path + CORRUPT_SUFFIX;
    await this.disk.rename(info.path, to);
    await this.disk.syncDir(this.dir);
    return to;
  }

  /** Deletes all but the newest `keep` snapshots. */
  async prune(keep = 2): Promise<string[]> {
    const { files } = await this.list();
    const doomed = files.slice(keep).map((f) => f.path);
    for (const path of doomed) await this.disk.unlink(path);
    if (doomed.length > 0) await this.disk.syncDir(this.dir);
    return doomed;
  }
}
