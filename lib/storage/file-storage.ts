import { EMPTY_HARD_STATE, isEmptyHardState, type Entry, type HardState, type Snapshot } from '../raft/types.js';
import { planBatch } from './batch-plan.js';
import type { Disk, DiskLock } from './disk.js';
import { CorruptLogError, CorruptSnapshotError, DiskFullError, InvalidWriteError } from './errors.js';
import { LogState } from './log-state.js';
import type { PersistBatch, RaftStorage, RecoveredState } from './raft-storage.js';
import { encodeRecords, type WalRecord } from './record.js';
import { SnapshotStore, snapshotFileName, type SnapshotFileInfo } from './snapshot-store.js';
import { DEFAULT_SEGMENT_BYTES, Wal, type RecordLocation } from './wal.js';

/** Where storage reports repairs (torn tail cut, damaged snapshot skipped) and housekeeping. */
export interface StorageLogger {
  warn(msg: string): void;
  log(msg: string): void;
}

export interface FileStorageOptions {
  /** WAL segment size at which a new segment is started (default 64 MiB). */
  readonly segmentBytes?: number;
  /** Default: silent. The runtime passes its logger. */
  readonly logger?: StorageLogger;
}

const SILENT: StorageLogger = { warn: () => undefined, log: () => undefined };
/** The dataDir's lock: one process at a time (a node, or a tool that reads the dir). */
export const LOCK_FILE = 'LOCK';
/** Snapshots kept; the older one can stand in if the newest is damaged and the WAL still covers the difference. */
const SNAPSHOTS_KEPT = 2;

/**
 * Durable Raft state in a dataDir: `LOCK`, `wal/` segments and `snap/` snapshots (format in docs/storage.md).
 *
 * Failure semantics: if a write or sync fails (EIO, ...), the storage enters a failed state and rejects that call and
 * every later persist/saveSnapshot with the same error. After a failed fsync the kernel may have dropped the dirty
 * pages and cleared the error ("fsyncgate"), so nothing written since the last good sync can be trusted and a retry
 * could report success for lost data. The caller must not acknowledge anything from the failed batch; the recovery
 * path is a restart, which re-reads what is really on disk.
 *
 * A full disk (ENOSPC, EDQUOT) is the exception: the failed write is rolled back — the segment cut back to the end of
 * the last synced batch and synced, a half-created segment or snapshot temp file deleted — and the call rejects with
 * DiskFullError, leaving the storage usable and unchanged. Only if that rollback fails does the storage fail as above.
 *
 * Calls are serialized, each waiting for the previous one to finish; writeSnapshotImage() and the pruning of old
 * snapshots run beside them (close() waits for those too).
 */
export class FileStorage implements RaftStorage {
  private readonly segmentBytes: number;
  private readonly logger: StorageLogger;
  private readonly snaps: SnapshotStore;
  private wal: Wal | null = null;
  private lock: DiskLock | null = null;
  private failure: { readonly error: unknown } | null = null;
  /** Live view of the log (indexes and terms only), kept by the same rules replay applies. */
  private log = new LogState({ withData: false, floor: 0, anchored: true });
  private snapshotIndex = 0;
  private hardState: HardState = EMPTY_HARD_STATE;
  private queue: Promise<unknown> = Promise.resolve();
  /** Images written by writeSnapshotImage() whose saveSnapshot() has not come yet, by file name. */
  private readonly images = new Map<string, SnapshotFileInfo>();
  /** Image writes and snapshot prunes under way beside the queue; close() waits for them (see background()). */
  private readonly besideQueue = new Set<Promise<unknown>>();
  /** Prunes run one after another: two at once would both try to delete the same files. */
  private pruning: Promise<void> = Promise.resolve();

  constructor(
    private readonly disk: Disk,
    options: FileStorageOptions = {},
  ) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.logger = options.logger ?? SILENT;
    this.snaps = new SnapshotStore(disk);
  }

  open(): Promise<RecoveredState> {
    return this.serial(async () => {
      if (this.wal !== null) throw new InvalidWriteError('storage is already open');
      await this.disk.mkdir('.');
      const lock = await this.disk.lock(LOCK_FILE);
      const wal = new Wal(this.disk, { segmentBytes: this.segmentBytes, carry: () => this.carry() });
      try {
        const state = await this.recover(wal);
        this.wal = wal;
        this.lock = lock;
        return state;
      } catch (err) {
        await wal.close().catch(() => undefined); // the recovery error is the one to report
        await lock.release();
        throw err;
      }
    });
  }

  persist(batch: PersistBatch): Promise<void> {
    return this.serial(async () => {
      const wal = this.writableWal();
      const entries = planBatch(this.log, this.snapshotIndex, batch);
      const snap = batch.snapshot;
      const hs = batch.hardState !== null && !sameHardState(batch.hardState, this.hardState) ? batch.hardState : null;
      const keep = snap !== null && this.log.markerKeeps(snap.meta.index, snap.meta.term);
      const records: WalRecord[] = [];
      if (snap !== null) records.push({ type: 'snapshotMarker', index: snap.meta.index, term: snap.meta.term, keep });
      for (const entry of entries) records.push({ type: 'entry', entry });
      if (hs !== null) records.push({ type: 'hardState', hardState: hs });
      if (records.length === 0) return;
      const buf = encodeRecords(records);
      const span = {
        first: entries[0]?.index ?? null,
        max: entries.at(-1)?.index ?? null,
        next: snap !== null && !keep ? snap.meta.index + 1 : this.log.lastIndex + 1,
      };
      await this.guard(async () => {
        if (snap !== null) await this.snaps.save(snap);
        await wal.append(buf, span);
      });
      if (snap !== null) this.applySnapshot(snap.meta.index, keep);
      for (const e of entries) this.log.appendEntry(e.index, e.term);
      if (hs !== null) this.hardState = hs;
      if (snap !== null) await this.guard(() => this.compact(snap.meta.index));
    });
  }

  /**
   * Outside the serial queue: persist() calls go on while the image is written. Safe because an image counts only
   * once its WAL marker is written (saveSnapshot, in the queue); a crash before that leaves a complete file whose
   * entries the WAL still holds, which recovery either uses (writing the marker then) or prunes later.
   */
  writeSnapshotImage(snapshot: Snapshot): Promise<void> {
    const write = (async () => {
      this.writableWal();
      if (snapshot.meta.index <= this.snapshotIndex) return;
      await this.guard(async () => {
        const saved = await this.snaps.save(snapshot);
        this.images.set(snapshotFileName(snapshot.meta.index, snapshot.meta.term), saved);
      });
    })();
    this.background(write);
    return write;
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.serial(async () => {
      const wal = this.writableWal();
      planBatch(this.log, this.snapshotIndex, { snapshot, entries: [], hardState: null });
      const { index, term } = snapshot.meta;
      const keep = this.log.markerKeeps(index, term);
      const name = snapshotFileName(index, term);
      const written = this.images.get(name);
      this.images.delete(name);
      await this.guard(async () => {
        const saved = written ?? (await this.snaps.save(snapshot));
        // The marker makes replay apply the snapshot at this point of the log, exactly as the live view does.
        try {
          await wal.append(encodeRecords([{ type: 'snapshotMarker', index, term, keep }]), {
            first: null,
            max: null,
            next: this.log.lastIndex + 1,
          });
        } catch (err) {
          // Refused for want of space: take the file back too, or the next open would find it without its marker and
          // have to write one — on the same full disk, so the node could not start.
          if (err instanceof DiskFullError) await this.snaps.remove(saved);
          throw err;
        }
      });
      this.applySnapshot(index, keep);
      await this.guard(() => this.compact(index));
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      await Promise.allSettled([...this.besideQueue]);
      this.images.clear();
      const wal = this.wal;
      const lock = this.lock;
      this.wal = null;
      this.lock = null;
      try {
        await wal?.close();
      } finally {
        await lock?.release();
      }
    });
  }

  private async recover(wal: Wal): Promise<RecoveredState> {
    for (const tmp of await this.snaps.prepare()) this.logger.warn(`storage: removed ${tmp} left by an interrupted snapshot write`);
    const { files, ignored } = await this.snaps.list();
    for (const name of ignored) this.logger.warn(`storage: ignoring ${name}, which is not a snapshot file`);

    const replayed = new LogState({ withData: true, floor: 0, anchored: false });
    let hardState = EMPTY_HARD_STATE;
    let start: RecordLocation = { file: 'wal/', offset: 0 };
    const report = await wal.replay((record, at) => {
      switch (record.type) {
        case 'entry': {
          const { index, term, data } = record.entry;
          const restarts = replayed.isEmpty || index < replayed.firstIndex;
          if (!replayed.appendEntry(index, term, data)) {
            throw new CorruptLogError(at.file, at.offset, `entry ${index} leaves a gap: the log ends at index ${replayed.lastIndex}`);
          }
          if (restarts) start = at;
          break;
        }
        case 'hardState':
          hardState = record.hardState;
          break;
        case 'snapshotMarker':
          replayed.applyMarker(record.index, record.keep);
          if (replayed.isEmpty) start = at;
          break;
        case 'segmentHeader':
          break;
      }
    });
    if (report.tornTail !== null) {
      const t = report.tornTail;
      this.logger.warn(`storage: cut a torn final record off ${t.file} at byte ${t.offset} (${t.dropped} bytes dropped: ${t.reason})`);
    }
    if (report.removedSegment !== null) this.logger.warn(`storage: removed ${report.removedSegment}, a segment whose header never reached the disk`);
    for (const name of report.ignored) this.logger.warn(`storage: ignoring ${name}, which is not a WAL segment`);

    const { snapshot, entries } = await this.chooseSnapshot(files, replayed, start);

    this.hardState = hardState;
    this.snapshotIndex = snapshot?.meta.index ?? 0;
    this.log = new LogState({ withData: false, floor: this.snapshotIndex, anchored: true });
    for (const e of entries) this.log.appendEntry(e.index, e.term);
    this.failure = null;
    await wal.start(this.log.lastIndex + 1);
    if (snapshot !== null && replayed.floor < snapshot.meta.index) {
      // The snapshot reached the disk but its marker did not (a crash in between). Record the decision taken above
      // now, or a later replay would judge it again against entries written after this open.
      const { index, term } = snapshot.meta;
      const keep = replayed.markerKeeps(index, term);
      await wal.append(encodeRecords([{ type: 'snapshotMarker', index, term, keep }]), { first: null, max: null, next: this.log.lastIndex + 1 });
      this.logger.warn(`storage: snapshot ${index} had no marker in the WAL (a crash between writing the image and recording it); wrote it`);
    }
    this.logger.log(
      `storage: recovered snapshot ${snapshot === null ? 'none' : `at ${snapshot.meta.index}`}, ` +
        `${entries.length} entries to ${this.log.lastIndex}, term ${hardState.term}, commit ${hardState.commit}`,
    );
    return { hardState, snapshot, entries };
  }

  /**
   * Picks the newest valid snapshot and the entries that follow it. A damaged newer snapshot is skipped only when
   * the WAL still holds every entry between the older one and it; otherwise nothing is guessed and open fails.
   */
  private async chooseSnapshot(
    files: readonly SnapshotFileInfo[],
    replayed: LogState,
    start: RecordLocation,
  ): Promise<{ snapshot: Snapshot | null; entries: Entry[] }> {
    const damaged: { info: SnapshotFileInfo; reason: string }[] = [];
    for (const info of files) {
      const read = await this.snaps.read(info);
      if (typeof read === 'string') {
        damaged.push({ info, reason: read });
        continue;
      }
      const follow = entriesAfter(replayed, read.meta.index, read.meta.term);
      const bad = damaged[0];
      if (bad === undefined) {
        if (typeof follow === 'string') throw new CorruptLogError(start.file, start.offset, follow);
        return { snapshot: read, entries: follow };
      }
      const reach = typeof follow === 'string' ? -1 : (follow.at(-1)?.index ?? read.meta.index);
      if (reach < bad.info.index) {
        throw new CorruptSnapshotError(
          bad.info.path,
          `${bad.reason}; the older snapshot ${info.path} cannot stand in because the WAL does not hold entries ` +
            `${read.meta.index + 1} to ${bad.info.index}. Restore the dataDir from a backup or remove it so the node ` +
            `catches up from the leader.`,
        );
      }
      for (const d of damaged) {
        const moved = await this.snaps.quarantine(d.info);
        this.logger.warn(`storage: skipped damaged snapshot ${d.info.path} (${d.reason}), kept as ${moved}; using ${info.path} and the WAL`);
      }
      return { snapshot: read, entries: follow as Entry[] };
    }
    const bad = damaged[0];
    if (bad !== undefined) {
      throw new CorruptSnapshotError(bad.info.path, `${bad.reason}, and there is no older valid snapshot to fall back on`);
    }
    const follow = entriesAfter(replayed, 0, 0);
    if (typeof follow === 'string') throw new CorruptLogError(start.file, start.offset, follow);
    return { snapshot: null, entries: follow };
  }

  /** Records repeated at the start of each new segment: the current hard state, so compaction cannot lose it. */
  private carry(): Uint8Array {
    return isEmptyHardState(this.hardState) ? new Uint8Array(0) : encodeRecords([{ type: 'hardState', hardState: this.hardState }]);
  }

  private applySnapshot(index: number, keep: boolean): void {
    for (const [name, image] of this.images) if (image.index <= index) this.images.delete(name);
    this.log.applyMarker(index, keep);
    this.log.trimThrough(index);
    this.snapshotIndex = index;
  }

  /**
   * Deletes WAL segments the snapshot at `index` covers, then, beside the queue, snapshots beyond the newest two:
   * unlinking a large image and syncing the directory took up to 15 ms, and no Ready needs to wait for it. An old
   * snapshot a crash brings back is harmless (recovery prefers the newest), so a failed prune only warns.
   */
  private async compact(index: number): Promise<void> {
    const wal = this.writableWal();
    const segments = await wal.compact(index);
    if (segments.length > 0) this.logger.log(`storage: compacted through ${index}: deleted ${segments.join(', ')}`);
    this.background(
      (this.pruning = this.pruning.then(() =>
        this.snaps.prune(SNAPSHOTS_KEPT).then(
          (gone) => void (gone.length > 0 && this.logger.log(`storage: deleted ${gone.join(', ')}, older than the newest ${SNAPSHOTS_KEPT} snapshots`)),
          (e: unknown) => this.logger.warn(`storage: could not delete old snapshots (${(e as Error).message}); they are tried again at the next snapshot`),
        ),
      )),
    );
  }

  /** Work beside the serial queue that close() must wait for, so none outlives the dataDir lock. */
  private background(work: Promise<unknown>): void {
    this.besideQueue.add(work);
    const done = (): void => void this.besideQueue.delete(work);
    work.then(done, done);
  }

  private writableWal(): Wal {
    if (this.failure !== null) throw this.failure.error;
    if (this.wal === null) throw new InvalidWriteError('storage is not open');
    return this.wal;
  }

  /** Runs a write; if it fails other than with a rolled-back full disk, the storage is failed from then on. */
  private async guard(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (!(err instanceof DiskFullError)) this.failure = { error: err };
      throw err;
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * The entries that follow a snapshot at (index, term) in the replayed log, or why they cannot be trusted. Entries
 * from a history that disagrees with the snapshot at its index are discarded, as installing it would have done.
 */
function entriesAfter(replayed: LogState, index: number, term: number): Entry[] | string {
  let entries: Entry[];
  const at = replayed.termAt(index);
  if (replayed.isEmpty || replayed.lastIndex < index) entries = [];
  else if (at !== undefined) entries = at === term ? replayed.entriesFrom(index + 1) : [];
  else if (replayed.firstIndex === index + 1) entries = replayed.entriesFrom(index + 1);
  else return `the WAL starts at index ${replayed.firstIndex} but ${index === 0 ? 'there is no snapshot' : `the snapshot ends at ${index}`}; entries ${index + 1} to ${replayed.firstIndex - 1} are missing`;
  const reach = entries.at(-1)?.index ?? index;
  if (replayed.floor > reach) {
    return `the WAL refers to a snapshot at index ${replayed.floor}, but the newest usable snapshot ends at ${index}`;
  }
  // Copy the data out of the segment buffers so they can be freed.
  return entries.map((e) => ({ term: e.term, index: e.index, data: e.data.slice() }));
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
