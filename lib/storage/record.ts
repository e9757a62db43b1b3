import { crc32 } from 'node:zlib';
import type { Entry, HardState } from '../raft/types.js';
import { asBuffer, readU64, setU64 } from './u64.js';

/**
 * WAL record codec. One record on disk:
 *
 *   u32 LE payload length | u8 type | u32 LE CRC32(type byte + payload) | payload
 *
 * The CRC covers the type so a flipped type byte is caught; the length is not covered (it cannot be, as it is
 * needed to find the CRC's extent) and is instead checked for plausibility and by the torn-tail rule below.
 */

export const RECORD_HEADER_BYTES = 9;
/** Larger lengths are treated as damage rather than allocated. */
export const MAX_RECORD_PAYLOAD = 1 << 30;
export const WAL_MAGIC = 'CATGAWAL';
export const WAL_VERSION = 1;

export const RecordType = {
  segmentHeader: 1,
  entry: 2,
  hardState: 3,
  snapshotMarker: 4,
  batchEnd: 5,
} as const;

/** First record of every segment file: identifies the format so a foreign file is refused, not misread. */
export interface SegmentHeaderRecord {
  readonly type: 'segmentHeader';
  readonly magic: string;
  readonly version: number;
  /** Index the segment was created to hold first (-1 when the payload is too short to say, i.e. another version). */
  readonly firstIndex: number;
}

export interface EntryRecord {
  readonly type: 'entry';
  readonly entry: Entry;
}

export interface HardStateRecord {
  readonly type: 'hardState';
  readonly hardState: HardState;
}

/**
 * Written after a snapshot is stored: entries up to `index` are covered by it, and the log continues after it.
 * `keep` records whether the entries the log held after `index` were kept (the log matched the snapshot at `index`)
 * or discarded; it is decided when written, because the entries it was decided on may be compacted away later.
 */
export interface SnapshotMarkerRecord {
  readonly type: 'snapshotMarker';
  readonly index: number;
  readonly term: number;
  readonly keep: boolean;
}

/**
 * Seals one write: `bytes` and `crc` describe everything the same write put before it. A damaged record followed by a
 * sealed, verified batch was synced before that batch was written, so it is corruption; damage with no verified
 * batch after it lies in the final write, which was never acknowledged, whatever order its pages reached the disk in.
 */
export interface BatchEndRecord {
  readonly type: 'batchEnd';
  readonly bytes: number;
  readonly crc: number;
}

export type WalRecord = SegmentHeaderRecord | EntryRecord | HardStateRecord | SnapshotMarkerRecord | BatchEndRecord;

const SEGMENT_HEADER_PAYLOAD = 8 + 2 + 8;
const ENTRY_FIXED = 16;
const HARD_STATE_FIXED = 8 + 8 + 2;
const MARKER_PAYLOAD = 17;
const BATCH_END_PAYLOAD = 8;

function payloadSize(rec: WalRecord): number {
  switch (rec.type) {
    case 'segmentHeader':
      return SEGMENT_HEADER_PAYLOAD;
    case 'entry':
      return ENTRY_FIXED + rec.entry.data.byteLength;
    case 'hardState': {
      const voteBytes = Buffer.byteLength(rec.hardState.vote, 'utf8');
      if (voteBytes > 0xffff) throw new RangeError(`node id too long for the WAL (${voteBytes} bytes, max 65535)`);
      return HARD_STATE_FIXED + voteBytes;
    }
    case 'snapshotMarker':
      return MARKER_PAYLOAD;
    case 'batchEnd':
      return BATCH_END_PAYLOAD;
  }
}

/** Bytes `rec` takes on disk, header included. */
export function encodedSize(rec: WalRecord): number {
  return RECORD_HEADER_BYTES + payloadSize(rec);
}

/**
 * Encodes records back to back into one freshly allocated buffer, so a whole batch goes to disk with one write
 * and no concatenation.
 */
export function encodeRecords(records: readonly WalRecord[]): Buffer {
  let total = 0;
  for (const rec of records) total += encodedSize(rec);
  const buf = Buffer.allocUnsafe(total);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  for (const rec of records) at = encodeInto(buf, view, at, rec);
  return buf;
}

function encodeInto(buf: Buffer, view: DataView, start: number, rec: WalRecord): number {
  const p = start + RECORD_HEADER_BYTES;
  if (rec.type === 'entry') return encodeEntry(buf, view, start, rec.entry);
  let end: number;
  switch (rec.type) {
    case 'segmentHeader':
      buf.write(WAL_MAGIC, p, 'latin1');
      view.setUint16(p + 8, rec.version, true);
      end = setU64(view, p + 10, rec.firstIndex);
      break;
    case 'hardState': {
      const hs = rec.hardState;
      setU64(view, p, hs.term);
      setU64(view, p + 8, hs.commit);
      const n = buf.write(hs.vote, p + HARD_STATE_FIXED, 'utf8');
      view.setUint16(p + 16, n, true);
      end = p + HARD_STATE_FIXED + n;
      break;
    }
    case 'snapshotMarker':
      setU64(view, p, rec.index);
      setU64(view, p + 8, rec.term);
      view.setUint8(p + 16, rec.keep ? 1 : 0);
      end = p + MARKER_PAYLOAD;
      break;
    case 'batchEnd':
      view.setUint32(p, rec.bytes, true);
      view.setUint32(p + 4, rec.crc, true);
      end = p + BATCH_END_PAYLOAD;
      break;
  }
  const type = RecordType[rec.type];
  view.setUint32(start, end - p, true);
  view.setUint8(start + 4, type);
  view.setUint32(start + 5, recordCrc(type, buf, p, end), true);
  return end;
}

/** Term and index of the entry being encoded, for its CRC. */
const entryHead = Buffer.alloc(ENTRY_FIXED);
const entryHeadView = new DataView(entryHead.buffer, entryHead.byteOffset, ENTRY_FIXED);

/**
 * An entry record, byte for byte as encodeInto writes the other types, but with the CRC chained over the fixed fields
 * and then the entry's own data rather than taken over a view of the record: no object per entry on the write path.
 */
function encodeEntry(buf: Buffer, view: DataView, start: number, entry: Entry): number {
  const p = start + RECORD_HEADER_BYTES;
  setU64(entryHeadView, 0, entry.term);
  setU64(entryHeadView, 8, entry.index);
  buf.set(entryHead, p);
  buf.set(entry.data, p + ENTRY_FIXED);
  const type = RecordType.entry;
  view.setUint32(start, ENTRY_FIXED + entry.data.byteLength, true);
  view.setUint8(start + 4, type);
  view.setUint32(start + 5, crc32(entry.data, crc32(entryHead, TYPE_SEEDS[type])), true);
  return p + ENTRY_FIXED + entry.data.byteLength;
}

function recordCrc(type: number, buf: Buffer, from: number, to: number): number {
  return crc32(buf.subarray(from, to), TYPE_SEEDS[type] ?? crc32(Buffer.of(type)));
}

/** CRC32 of each possible type byte, the starting value for the payload's CRC. */
const TYPE_SEEDS: readonly number[] = Array.from({ length: 256 }, (_, t) => crc32(Buffer.of(t)));
const TYPES_BY_CODE = new Map<number, WalRecord['type']>(
  Object.entries(RecordType).map(([name, code]) => [code, name as WalRecord['type']]),
);

export interface DecodedRecord {
  readonly record: WalRecord;
  /** Byte offset of the record's header in the decoded buffer. */
  readonly offset: number;
  /** Bytes the record occupies, header included. */
  readonly size: number;
}

/**
 * How decoding stopped.
 * - `clean`: the buffer ends exactly after a record.
 * - `torn`: the bytes from `offset` on hold no intact record: an incomplete header, a length running past the end,
 *   or a CRC failure, with nothing intact after it (only zeros or garbage). That is what a write cut short by a
 *   power failure leaves, and it can only be the last thing in a file.
 * - `corrupt`: a damaged record at `offset` with an intact record somewhere after it, or a record whose CRC is
 *   right but whose content is invalid. Damage in the middle of a log is never a torn write; nothing is guessed.
 */
export type DecodeEnd =
  | { readonly kind: 'clean' }
  | { readonly kind: 'torn'; readonly offset: number; readonly reason: string }
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string };

export interface DecodeResult {
  readonly records: DecodedRecord[];
  readonly end: DecodeEnd;
}

/** Walks `bytes` record by record. Entry data are views into `bytes` (no copy). */
export function decodeRecords(bytes: Uint8Array): DecodeResult {
  const buf = asBuffer(bytes);
  const records: DecodedRecord[] = [];
  let at = 0;
  while (at < buf.length) {
    const frame = checkFrame(buf, at);
    if ('reason' in frame) {
      if (frame.definite) return { records, end: { kind: 'corrupt', offset: at, reason: frame.reason } };
      const next = findSealedBatch(buf, at);
      const end: DecodeEnd =
        next < 0
          ? { kind: 'torn', offset: at, reason: frame.reason }
          : { kind: 'corrupt', offset: at, reason: `${frame.reason}; a complete, verified batch follows at byte ${next}` };
      return { records, end };
    }
    const record = parsePayload(frame.type, buf, at + RECORD_HEADER_BYTES, frame.end);
    if (typeof record === 'string') return { records, end: { kind: 'corrupt', offset: at, reason: record } };
    records.push({ record, offset: at, size: frame.end - at });
    at = frame.end;
  }
  return { records, end: { kind: 'clean' } };
}

interface Frame {
  readonly type: WalRecord['type'];
  readonly end: number;
}

/** Why the bytes at an offset are not a record; `definite` when they cannot be a torn write (the CRC matched). */
interface BadFrame {
  readonly reason: string;
  readonly definite: boolean;
}

/** The record frame at `at` if its header is plausible and its CRC matches, else why not. */
function checkFrame(buf: Buffer, at: number): Frame | BadFrame {
  if (buf.length - at < RECORD_HEADER_BYTES) return { reason: 'incomplete record header', definite: false };
  const length = buf.readUInt32LE(at);
  const code = buf[at + 4] ?? 0;
  if (length > MAX_RECORD_PAYLOAD) return { reason: `implausible record length ${length}`, definite: false };
  const end = at + RECORD_HEADER_BYTES + length;
  if (end > buf.length) {
    return { reason: `record of ${length} bytes runs past the end of the file`, definite: false };
  }
  const crcOk = recordCrc(code, buf, at + RECORD_HEADER_BYTES, end) === buf.readUInt32LE(at + 5);
  const type = TYPES_BY_CODE.get(code);
  if (type === undefined) {
    return crcOk
      ? { reason: `unknown record type ${code} (written by a newer version?)`, definite: true }
      : { reason: `bad record type ${code}`, definite: false };
  }
  if (!crcOk) return { reason: 'CRC mismatch', definite: false };
  return { type, end };
}

/**
 * Start of a complete batch lying wholly after `damage` — an intact batchEnd record whose batch starts past the
 * damage and whose CRC over that batch matches — or -1 when there is none.
 */
function findSealedBatch(buf: Buffer, damage: number): number {
  const code = RecordType.batchEnd;
  for (let p = damage + 1; p + RECORD_HEADER_BYTES + BATCH_END_PAYLOAD <= buf.length; p++) {
    if (buf[p + 4] !== code || buf.readUInt32LE(p) !== BATCH_END_PAYLOAD || 'reason' in checkFrame(buf, p)) continue;
    const bytes = buf.readUInt32LE(p + RECORD_HEADER_BYTES);
    const start = p - bytes;
    if (start > damage && crc32(buf.subarray(start, p)) === buf.readUInt32LE(p + RECORD_HEADER_BYTES + 4)) return start;
  }
  return -1;
}

/** `batch` followed by its batchEnd seal: what one WAL write puts on disk. */
export function sealBatch(batch: Uint8Array): Buffer {
  return Buffer.concat([batch, encodeRecords([{ type: 'batchEnd', bytes: batch.byteLength, crc: crc32(batch) }])]);
}

function parsePayload(type: WalRecord['type'], buf: Buffer, p: number, end: number): WalRecord | string {
  const size = end - p;
  switch (type) {
    case 'segmentHeader': {
      if (size < 10) return 'segment header too short';
      const magic = buf.toString('latin1', p, p + 8);
      const version = buf.readUInt16LE(p + 8);
      const firstIndex = size >= SEGMENT_HEADER_PAYLOAD ? readU64(buf, p + 10) : -1;
      return { type, magic, version, firstIndex };
    }
    case 'entry': {
      if (size < ENTRY_FIXED) return 'entry record too short';
      const term = readU64(buf, p);
      const index = readU64(buf, p + 8);
      if (term < 0 || index < 1) return 'entry term or index out of range';
      return { type, entry: { term, index, data: buf.subarray(p + ENTRY_FIXED, end) } };
    }
    case 'hardState': {
      if (size < HARD_STATE_FIXED || size !== HARD_STATE_FIXED + buf.readUInt16LE(p + 16)) {
        return 'hard state record has the wrong length';
      }
      const term = readU64(buf, p);
      const commit = readU64(buf, p + 8);
      if (term < 0 || commit < 0) return 'hard state term or commit out of range';
      return { type, hardState: { term, vote: buf.toString('utf8', p + HARD_STATE_FIXED, end), commit } };
    }
    case 'snapshotMarker': {
      if (size !== MARKER_PAYLOAD) return 'snapshot marker has the wrong length';
      const index = readU64(buf, p);
      const term = readU64(buf, p + 8);
      const flag = buf[p + 16];
      if (index < 0 || term < 0 || (flag !== 0 && flag !== 1)) return 'snapshot marker fields out of range';
      return { type, index, term, keep: flag === 1 };
    }
    case 'batchEnd': {
      if (size !== BATCH_END_PAYLOAD) return 'batch end has the wrong length';
      return { type, bytes: buf.readUInt32LE(p), crc: buf.readUInt32LE(p + 4) };
    }
  }
}
