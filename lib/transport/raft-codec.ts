import { MessageType, decodeMembership, encodeMembership, type Entry, type Membership, type Message, type SnapshotChunk } from '../raft/index.js';
import { ByteReader, asBuffer, checkU64, putStr16, putU64, str16Size } from './binary.js';
import { FrameError } from './errors.js';

/**
 * Binary codec of a Raft Message. Layout (little endian; u64 = low u32 + high u32, see binary.ts):
 *
 *   u8 type | u8 flags (bit 0 reject, bit 1 snapshot present) | str16 from | str16 to |
 *   u64 term | u64 logTerm | u64 index | u64 commit | u64 rejectHint | u64 stamp | u64 fence | str16 context |
 *   u32 entry count | entries: (u64 term | u64 index | u32 length | data)* |
 *   snapshot, when flagged: u64 meta.index | u64 meta.term | u32 length | configuration (lib/raft/membership.ts) |
 *                           u64 offset | u64 total | u32 length | data
 *
 * str16 = u16 byte length + utf8. Encoding sizes the message in one pass and writes it into one preallocated buffer.
 */

const FIXED_BYTES = 1 + 1 + 7 * 8 + 4; // type, flags, seven u64, entry count; the three str16 are counted apart
const ENTRY_FIXED_BYTES = 8 + 8 + 4;
const SNAPSHOT_FIXED_BYTES = 8 + 8 + 4 + 8 + 8 + 4;
const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const MAX_TYPE = MessageType.TimeoutNow;
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Every chunk of a snapshot carries the same configuration: encode it once, not twice per chunk. */
const membershipCache = new WeakMap<Membership, Uint8Array>();

function membershipBytes(m: Membership): Uint8Array {
  let b = membershipCache.get(m);
  if (!b) membershipCache.set(m, (b = encodeMembership(m)));
  return b;
}

/**
 * Encoded size of `m` in bytes. Also checks every field, throwing RangeError for values the layout cannot hold (a
 * caller bug), so that writeMessage never fails half-way through a buffer shared with other frames.
 */
export function messageSize(m: Message): number {
  let n = FIXED_BYTES + str16Size(m.from, 'from') + str16Size(m.to, 'to') + str16Size(m.context, 'context');
  if (!Number.isInteger(m.type) || m.type < 1 || m.type > MAX_TYPE) throw new RangeError(`unknown message type ${m.type}`);
  checkU64(m.term, 'term');
  checkU64(m.logTerm, 'logTerm');
  checkU64(m.index, 'index');
  checkU64(m.commit, 'commit');
  checkU64(m.rejectHint, 'rejectHint');
  checkU64(m.stamp, 'stamp');
  checkU64(m.fence, 'fence');
  if (m.entries.length > 0xffff_ffff) throw new RangeError(`${m.entries.length} entries do not fit a u32 count`);
  // Indexed loops here and in writeMessage: heap profiles showed for-of allocating an iterator result per entry.
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    checkU64(e.term, 'entry term');
    checkU64(e.index, 'entry index');
    n += ENTRY_FIXED_BYTES + e.data.byteLength;
  }
  const s = m.snapshot;
  if (s !== null) {
    checkU64(s.meta.index, 'snapshot index');
    checkU64(s.meta.term, 'snapshot term');
    checkU64(s.offset, 'snapshot offset');
    checkU64(s.total, 'snapshot total');
    n += SNAPSHOT_FIXED_BYTES + s.data.byteLength + membershipBytes(s.meta.membership).byteLength;
  }
  return n;
}

/**
 * Writes `m` at `offset` and returns the offset after it. Call messageSize(m) first: it validates the message and
 * says how many bytes must be free.
 */
export function writeMessage(buf: Buffer, offset: number, m: Message): number {
  let o = offset;
  buf[o++] = m.type;
  buf[o++] = (m.reject ? FLAG_REJECT : 0) | (m.snapshot !== null ? FLAG_SNAPSHOT : 0);
  o = putStr16(buf, o, m.from);
  o = putStr16(buf, o, m.to);
  o = putU64(buf, o, m.term);
  o = putU64(buf, o, m.logTerm);
  o = putU64(buf, o, m.index);
  o = putU64(buf, o, m.commit);
  o = putU64(buf, o, m.rejectHint);
  o = putU64(buf, o, m.stamp);
  o = putU64(buf, o, m.fence);
  o = putStr16(buf, o, m.context);
  o = buf.writeUInt32LE(m.entries.length, o);
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    o = putU64(buf, o, e.term);
    o = putU64(buf, o, e.index);
    o = buf.writeUInt32LE(e.data.byteLength, o);
    buf.set(e.data, o);
    o += e.data.byteLength;
  }
  const s = m.snapshot;
  if (s !== null) {
    o = putU64(buf, o, s.meta.index);
    o = putU64(buf, o, s.meta.term);
    const conf = membershipBytes(s.meta.membership);
    o = buf.writeUInt32LE(conf.byteLength, o);
    buf.set(conf, o);
    o += conf.byteLength;
    o = putU64(buf, o, s.offset);
    o = putU64(buf, o, s.total);
    o = buf.writeUInt32LE(s.data.byteLength, o);
    buf.set(s.data, o);
    o += s.data.byteLength;
  }
  return o;
}

/** One message in its own buffer (sending uses messageSize + writeMessage into a shared one). */
export function encodeMessage(m: Message): Buffer {
  const buf = Buffer.allocUnsafe(messageSize(m));
  writeMessage(buf, 0, m);
  return buf;
}

/**
 * Decodes one message that fills `bytes` exactly. Throws FrameError on anything malformed. Entry and snapshot data
 * are copies, so the Raft log never pins the socket chunk they arrived in.
 */
export function decodeMessage(bytes: Uint8Array): Message {
  const buf = asBuffer(bytes);
  const r = new ByteReader(buf, 'raft message');
  const type = r.u8('type');
  if (type < 1 || type > MAX_TYPE) throw new FrameError(`raft message: unknown type ${type}`);
  const flags = r.u8('flags');
  if ((flags & ~(FLAG_REJECT | FLAG_SNAPSHOT)) !== 0) throw new FrameError(`raft message: unknown flags 0x${flags.toString(16)}`);
  const from = r.str16('from');
  const to = r.str16('to');
  const term = r.u64('term');
  const logTerm = r.u64('logTerm');
  const index = r.u64('index');
  const commit = r.u64('commit');
  const rejectHint = r.u64('rejectHint');
  const stamp = r.u64('stamp');
  const fence = r.u64('fence');
  const context = r.str16('context');
  const count = r.u32('entry count');
  // Each entry takes at least ENTRY_FIXED_BYTES, so the count is checked before anything is sized from it.
  r.need(count * ENTRY_FIXED_BYTES, `${count} entries`);
  let entries = NO_ENTRIES;
  if (count > 0) {
    // One copy of the rest of the message (for an App, its entries and nothing else), the entries' data views into
    // it: a copy per entry cost some 300 bytes of objects each. Entries of one message leave the log together, so
    // the shared copy is not held much longer than any one of them.
    const from = r.offset;
    const block = Buffer.allocUnsafe(r.remaining);
    buf.copy(block, 0, from);
    const list: Entry[] = new Array<Entry>(count);
    for (let i = 0; i < count; i++) {
      const eTerm = r.u64('entry term');
      const eIndex = r.u64('entry index');
      const n = r.u32('entry length');
      const data = new Uint8Array(block.buffer, block.byteOffset + r.skip(n, 'entry data') - from, n);
      list[i] = { term: eTerm, index: eIndex, data };
    }
    entries = list;
  }
  const snapshot = (flags & FLAG_SNAPSHOT) !== 0 ? readSnapshot(r) : null;
  r.end();
  return {
    type: type as MessageType,
    from,
    to,
    term,
    logTerm,
    index,
    commit,
    entries,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    context,
    stamp,
    fence,
    snapshot,
  };
}

function readSnapshot(r: ByteReader): SnapshotChunk {
  const index = r.u64('snapshot index');
  const term = r.u64('snapshot term');
  const conf = r.copy(r.u32('configuration length'), 'configuration');
  let membership: Membership;
  try {
    membership = decodeMembership(conf);
  } catch (e) {
    throw new FrameError(`raft message: snapshot ${(e as Error).message}`);
  }
  const offset = r.u64('snapshot offset');
  const total = r.u64('snapshot total');
  const data = r.copy(r.u32('snapshot chunk length'), 'snapshot chunk data');
  return { meta: { index, term, membership }, offset, total, data };
}
