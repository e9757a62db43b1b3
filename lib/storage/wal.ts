import type { AppendFile, Disk } from './disk.js';
import { settleFailedWrite } from './disk-full.js';
import { CorruptLogError, UnsupportedFormatError } from './errors.js';
import { decodeRecords, encodeRecords, sealBatch, WAL_MAGIC, WAL_VERSION, type WalRecord } from './record.js';

/**
 * The write-ahead log: segment files in wal/ named `<seq>-<firstIndex>.wal` (both zero-padded to 16 digits), each
 * starting with a segment header record. Only the last segment is ever written. Files are never rewritten: a
 * conflicting suffix is replaced by appending (see log-state.ts), and a torn tail is cut off at open.
 */

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

export interface WalOptions {
  /** A segment is closed and a new one started when the next batch would take it past this size. */
  readonly segmentBytes: number;
  /** Encoded records written at the start of every new segment after its header (the current hard state), so
   * that deleting older segments never loses them. */
  readonly carry: () => Uint8Array;
}

/** Where a record lives, for error messages. */
export interface RecordLocation {
  readonly file: string;
  readonly offset: number;
}

/** Bookkeeping for one segment file; `maxIndex` drives compaction. */
export interface SegmentInfo {
  readonly seq: number;
  readonly firstIndex: number;
  readonly path: string;
  /** Highest entry index written to the segment; 0 when it holds no entry. */
  maxIndex: number;
}

/** What replay had to repair or skip, for the caller to log. */
export interface ReplayReport {
  /** The torn final record that was cut off. */
  readonly tornTail: { readonly file: string; readonly offset: number; readonly dropped: number; readonly reason: string } | null;
  /** A last segment whose header never made it to disk, deleted. */
  readonly removedSegment: string | null;
  /** Files in wal/ that are not segments. */
  readonly ignored: readonly string[];
}

/** Which entries a batch holds, for segment naming and the compaction index. */
export interface BatchSpan {
  /** Index of the first entry in the batch, or null when it has none. */
  readonly first: number | null;
  /** Highest entry index in the batch, or null. */
  readonly max: number | null;
  /** The index the log continues at, used to name a new segment when the batch has no entry. */
  readonly next: number;
}

const DIR = 'wal';
const NAME = /^(\d{16})-(\d{16})\.wal$/;

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${String(seq).padStart(16, '0')}-${String(firstIndex).padStart(16, '0')}.wal`;
}

function headerBytes(firstIndex: number): Buffer {
  return encodeRecords([{ type: 'segmentHeader', magic: WAL_MAGIC, version: WAL_VERSION, firstIndex }]);
}

export class Wal {
  private readonly segments: SegmentInfo[] = [];
  private file: AppendFile | null = null;
  /** Size of the active segment right after creation (header + carried records); it rolls only once past it. */
  private baseSize = 0;

  constructor(
    private readonly disk: Disk,
    private readonly options: WalOptions,
  ) {}

  /**
   * Reads every segment in order and hands each record to `visit` (which may throw, e.g. on a gap). Cuts a torn
   * tail off the last segment; throws CorruptLogError for any other damage and UnsupportedFormatError for a
   * foreign file. Leaves the last segment open for appending.
   */
  async replay(visit: (record: WalRecord, at: RecordLocation) => void): Promise<ReplayReport> {
    await this.disk.mkdir(DIR);
    const found: SegmentInfo[] = [];
    const ignored: string[] = [];
    for (const name of await this.disk.list(DIR)) {
      const m = NAME.exec(name);
      if (m) found.push({ seq: Number(m[1]), firstIndex: Number(m[2]), path: `${DIR}/${name}`, maxIndex: 0 });
      else if (name.endsWith('.wal')) throw new UnsupportedFormatError(`${DIR}/${name}`, 'not a segment file name');
      else ignored.push(`${DIR}/${name}`);
    }
    found.sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < found.length; i++) {
      const prev = found[i - 1] as SegmentInfo;
      const seg = found[i] as SegmentInfo;
      if (seg.seq !== prev.seq + 1) {
        throw new CorruptLogError(seg.path, 0, `segment ${prev.seq + 1} is missing (segments are deleted only oldest first)`);
      }
    }

    let tornTail: ReplayReport['tornTail'] = null;
    let removedSegment: string | null = null;
    for (let i = 0; i < found.length; i++) {
      const seg = found[i] as SegmentInfo;
      const isLast = i === found.length - 1;
      const bytes = (await this.disk.readFile(seg.path)) ?? new Uint8Array(0);
      const { records, end } = decodeRecords(bytes);
      const head = records[0];
      if (head === undefined || head.record.type !== 'segmentHeader') {
        if (isLast && records.length === 0 && isTornCreation(bytes, seg.firstIndex)) {
          // Created, then cut by a crash before its header was synced: it never held an acknowledged record.
          await this.disk.unlink(seg.path);
          await this.disk.syncDir(DIR);
          removedSegment = seg.path;
          break;
        }
        throw headerError(bytes, seg.path);
      }
      checkHeader(head.record, seg);
      for (let r = 1; r < records.length; r++) {
        const { record, offset } = records[r] as (typeof records)[number];
        if (record.type === 'segmentHeader') throw new CorruptLogError(seg.path, offset, 'segment header in mid-file');
        if (record.type === 'entry') seg.maxIndex = Math.max(seg.maxIndex, record.entry.index);
        visit(record, { file: seg.path, offset });
      }
      if (end.kind === 'corrupt') throw new CorruptLogError(seg.path, end.offset, end.reason);
      if (end.kind === 'torn') {
        if (!isLast) {
          throw new CorruptLogError(seg.path, end.offset, `${end.reason}, and this is not the last segment`);
        }
        const file = await this.disk.openAppend(seg.path);
        await file.truncate(end.offset);
        await file.sync();
        this.file = file;
        tornTail = { file: seg.path, offset: end.offset, dropped: bytes.length - end.offset, reason: end.reason };
      }
      this.segments.push(seg);
    }
    const last = this.segments.at(-1);
    if (last !== undefined && this.file === null) this.file = await this.disk.openAppend(last.path);
    this.baseSize = this.file?.size ?? 0;
    return { tornTail, removedSegment, ignored };
  }

  /** Makes sure there is an active segment; the first one is named after `nextIndex`. */
  async start(nextIndex: number): Promise<void> {
    if (this.file === null) await this.createSegment(nextIndex, new Uint8Array(0));
  }

  /**
   * Appends one encoded batch with one write and one fdatasync, rolling to a new segment when this one is full.
   * On a full disk the bytes the failed write left are cut off again (DiskFullError, see disk-full.ts).
   */
  async append(batch: Uint8Array, span: BatchSpan): Promise<void> {
    const file = this.activeFile();
    if (file.size > this.baseSize && file.size + batch.byteLength > this.options.segmentBytes) {
      await this.createSegment(span.first ?? span.next, batch);
      await file.close();
    } else {
      const before = file.size;
      try {
        await file.append(sealBatch(batch));
        await file.sync();
      } catch (err) {
        // Everything up to `before` was synced by earlier batches; cutting back to it and syncing drops only this
        // batch, whose pages a failed fdatasync may have left in any state.
        throw await settleFailedWrite(err, async () => {
          await file.truncate(before);
          await file.sync();
        });
      }
    }
    const seg = this.segments.at(-1) as SegmentInfo;
    if (span.max !== null) seg.maxIndex = Math.max(seg.maxIndex, span.max);
  }

  /**
   * Deletes the oldest segments whose entries all lie at or below `through` (covered by a durable snapshot). Stops
   * at the first one that does not qualify, so the remaining segments stay contiguous, and never deletes the
   * active one. Returns the deleted paths.
   */
  async compact(through: number): Promise<string[]> {
    const doomed: SegmentInfo[] = [];
    for (const seg of this.segments.slice(0, -1)) {
      if (seg.maxIndex > through) break;
      doomed.push(seg);
    }
    // One directory sync per deletion, oldest first: the file system may persist unlinks in any order, and replay
    // must never find a hole in the sequence.
    for (const seg of doomed) {
      await this.disk.unlink(seg.path);
      await this.disk.syncDir(DIR);
      this.segments.shift();
    }
    return doomed.map((s) => s.path);
  }

  async close(): Promise<void> {
    const file = this.file;
    this.file = null;
    if (file !== null) await file.close();
  }

  private activeFile(): AppendFile {
    if (this.file === null) throw new Error('WAL is not open');
    return this.file;
  }

  /** Starts segment seq+1 holding header, carried records and `tail`, synced, with its directory entry synced. */
  private async createSegment(firstIndex: number, tail: Uint8Array): Promise<void> {
    const seq = (this.segments.at(-1)?.seq ?? 0) + 1;
    const path = `${DIR}/${segmentFileName(seq, firstIndex)}`;
    const head = Buffer.concat([headerBytes(firstIndex), this.options.carry()]);
    let file: AppendFile;
    try {
      file = await this.disk.openAppend(path);
    } catch (err) {
      throw await settleFailedWrite(err, async () => undefined); // no inode left: nothing was created
    }
    try {
      if (file.size > 0) await file.truncate(0);
      await file.append(sealBatch(tail.byteLength > 0 ? Buffer.concat([head, tail]) : head));
      await file.sync();
      await this.disk.syncDir(DIR);
    } catch (err) {
      await file.close().catch(() => undefined); // the write error is the one to report
      throw await settleFailedWrite(err, async () => {
        await this.disk.unlink(path);
        await this.disk.syncDir(DIR);
      });
    }
    this.segments.push({ seq, firstIndex, path, maxIndex: 0 });
    this.file = file;
    // A segment holding only its header (sealed) must not roll again; one that took a batch may.
    this.baseSize = tail.byteLength > 0 ? head.byteLength : file.size;
  }
}

function checkHeader(header: WalRecord & { type: 'segmentHeader' }, seg: SegmentInfo): void {
  if (header.magic !== WAL_MAGIC) throw new UnsupportedFormatError(seg.path, `segment magic is not ${WAL_MAGIC}`);
  if (header.version !== WAL_VERSION) {
    throw new UnsupportedFormatError(seg.path, `WAL format version ${header.version}, this build reads ${WAL_VERSION}`);
  }
  if (header.firstIndex !== seg.firstIndex) {
    throw new CorruptLogError(seg.path, 0, `header says first index ${header.firstIndex} but the file name says ${seg.firstIndex}`);
  }
}

/** True when `bytes` are what a crash leaves of a freshly created segment: a prefix of its header, or zeros. */
function isTornCreation(bytes: Uint8Array, firstIndex: number): boolean {
  const expected = headerBytes(firstIndex);
  if (bytes.byteLength < expected.length && expected.subarray(0, bytes.byteLength).equals(bytes)) return true;
  return bytes.every((b) => b === 0);
}

function headerError(bytes: Uint8Array, path: string): Error {
  const magicAt = 9; // after the record header
  const magic = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1', magicAt, magicAt + 8);
  if (magic !== WAL_MAGIC) return new UnsupportedFormatError(path, `it does not start with a ${WAL_MAGIC} segment header`);
  return new CorruptLogError(path, 0, 'damaged segment header');
}
