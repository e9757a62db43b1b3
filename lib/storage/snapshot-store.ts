import type { Snapshot } from '../raft/types.js';
import { writeWholeFile, type Disk } from './disk.js';
import { settleFailedWrite } from './disk-full.js';
import { errnoCode } from './errors.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot-file.js';

/** A snapshot file found in snap/, named `<index>-<term>.snap`, both zero-padded to 16 digits. */
export interface SnapshotFileInfo {
  /** Path relative to the dataDir (`snap/...`). */
  readonly path: string;
  readonly index: number;
  readonly term: number;
}

const NAME = /^(\d{16})-(\d{16})\.snap$/;
const TMP_SUFFIX = '.tmp';
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
    const bytes = encodeSnapshot(snapshot);
    try {
      await writeWholeFile(this.disk, tmp, bytes);
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
