import { crc32 } from 'node:zlib';
import { decodeMembership, encodeMembership, membershipOf, type Membership } from '../raft/membership.js';
import type { NodeId, Snapshot } from '../raft/types.js';
import { UnsupportedFormatError } from './errors.js';
import { asBuffer, readU64, writeU64 } from './u64.js';

/**
 * Snapshot file format:
 *
 *   header: "CATGASNP" | u32 LE version (2) | u32 LE CRC32(body)
 *   body:   u64 index | u64 term | u32 configuration length | configuration (a configuration entry's bytes) |
 *           u64 data length | data
 *
 * Version 1 stored a voter list instead of the configuration (u32 count, then u16 length + utf8 per voter); it is
 * still read, as voters whose addresses come from the node's options. One CRC over the whole body: a snapshot is read
 * whole and is either intact or useless.
 */

export const SNAPSHOT_MAGIC = 'CATGASNP';
export const SNAPSHOT_VERSION = 2;
const HEADER_BYTES = 16;

/** Bytes of data checksummed between two pauses while a snapshot file is encoded (~0.1 ms of CRC). */
const CRC_STEP = 256 * 1024;

/** The header and the body up to the data, with the CRC left to fill in. */
function headOf(snapshot: Snapshot): Buffer {
  const { meta, data } = snapshot;
  const conf = encodeMembership(meta.membership);
  const head = Buffer.allocUnsafe(HEADER_BYTES + 8 + 8 + 4 + conf.byteLength + 8);
  head.write(SNAPSHOT_MAGIC, 0, 'latin1');
  head.writeUInt32LE(SNAPSHOT_VERSION, 8);
  let p = writeU64(head, HEADER_BYTES, meta.index);
  p = writeU64(head, p, meta.term);
  p = head.writeUInt32LE(conf.byteLength, p);
  head.set(conf, p);
  writeU64(head, p + conf.byteLength, data.byteLength);
  return head;
}

/**
 * A snapshot file as two parts to write one after the other: the header and the body up to the data, CRC filled
 * in, then the snapshot's data itself (not copied). The CRC runs over the data 256 KiB at a time with `pause()` awaited
 * between, so a large snapshot does not hold the event loop (copying 10 MB into one file buffer and checksumming it
 * at once took tens of ms).
 */
export async function encodeSnapshotParts(snapshot: Snapshot, pause?: () => Promise<void>): Promise<[Buffer, Uint8Array]> {
  const { data } = snapshot;
  const head = headOf(snapshot);
  let crc = crc32(head.subarray(HEADER_BYTES));
  for (let at = 0; at < data.byteLength; at += CRC_STEP) {
    if (pause && at > 0) await pause();
    crc = crc32(data.subarray(at, at + CRC_STEP), crc);
  }
  head.writeUInt32LE(crc, 12);
  return [head, data];
}

/** The whole file in one buffer (snapshot exports): the parts of encodeSnapshotParts, joined. */
export function encodeSnapshot(snapshot: Snapshot): Buffer {
  const buf = Buffer.concat([headOf(snapshot), snapshot.data]);
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_BYTES)), 12);
  return buf;
}

/**
 * Decodes a snapshot file. Throws UnsupportedFormatError for a file of another format or version; returns the
 * reason as a string when the file is damaged (the caller decides whether an older snapshot can stand in).
 * The snapshot's data is a view into `bytes`.
 */
export function decodeSnapshot(bytes: Uint8Array, file: string): Snapshot | string {
  const buf = asBuffer(bytes);
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 8) !== SNAPSHOT_MAGIC) {
    throw new UnsupportedFormatError(file, `it does not start with ${SNAPSHOT_MAGIC}`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== SNAPSHOT_VERSION && version !== 1) {
    throw new UnsupportedFormatError(file, `snapshot format version ${version}, this build reads 1 and ${SNAPSHOT_VERSION}`);
  }
  if (crc32(buf.subarray(HEADER_BYTES)) !== buf.readUInt32LE(12)) return 'CRC mismatch';
  const body = parseBody(buf, version);
  return body ?? 'malformed body';
}

function parseBody(buf: Buffer, version: number): Snapshot | null {
  let p = HEADER_BYTES;
  const need = (n: number): boolean => p + n <= buf.length;
  if (!need(20)) return null;
  const index = readU64(buf, p);
  const term = readU64(buf, p + 8);
  const count = buf.readUInt32LE(p + 16);
  p += 20;
  if (index < 0 || term < 0) return null;
  let membership: Membership;
  if (version === 1) {
    const voters: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      if (!need(2)) return null;
      const n = buf.readUInt16LE(p);
      p += 2;
      if (!need(n)) return null;
      voters.push(buf.toString('utf8', p, p + n));
      p += n;
    }
    membership = membershipOf(voters);
  } else {
    if (!need(count)) return null;
    try {
      membership = decodeMembership(buf.subarray(p, p + count));
    } catch {
      return null;
    }
    p += count;
  }
  if (!need(8)) return null;
  const length = readU64(buf, p);
  p += 8;
  if (length < 0 || p + length !== buf.length) return null;
  return { meta: { index, term, membership }, data: buf.subarray(p) };
}
