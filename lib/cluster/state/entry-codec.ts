import { GrowingBytes } from '../../io/large-bytes.js';
import { pack, packScratch, unpack } from '../msgpack.js';
import type { SessionId } from './session-table.js';

/** A log entry's payload: which module, its command, the proposer's clock, and optionally a client session. */
export interface EntryPayload {
  readonly module: string;
  readonly command: unknown;
  readonly time: number;
  readonly session?: SessionId;
}

export function encodePayload(p: EntryPayload): Uint8Array {
  const s = p.session;
  return pack(s ? [p.module, p.command, p.time, s.client, s.seq] : [p.module, p.command, p.time]);
}

export function decodePayload(data: Uint8Array): EntryPayload {
  const v = unpack(data) as unknown[];
  if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[2] !== 'number') {
    throw new Error('entry payload is not [module, command, time, client?, seq?]');
  }
  const session = typeof v[3] === 'string' && typeof v[4] === 'number' ? { client: v[3], seq: v[4] } : undefined;
  return { module: v[0], command: v[1], time: v[2], session };
}

export function decodeImage(data: Uint8Array): unknown {
  return unpack(data);
}

function writeArrayHeader(out: Buffer, p: number, n: number): number {
  if (n < 0x10) return out.writeUInt8(0x90 | n, p);
  if (n < 0x1_0000) return out.writeUInt16BE(n, out.writeUInt8(0xdc, p));
  return out.writeUInt32BE(n, out.writeUInt8(0xdd, p));
}

function writeBinHeader(out: Buffer, p: number, n: number): number {
  if (n < 0x100) return out.writeUInt8(n, out.writeUInt8(0xc4, p));
  if (n < 0x1_0000) return out.writeUInt16BE(n, out.writeUInt8(0xc5, p));
  return out.writeUInt32BE(n, out.writeUInt8(0xc6, p));
}

/**
 * A snapshot image (a msgpack array of bins, the same bytes as msgpack.ts's `pack(parts)`) written part by part
 * straight into one buffer that grows in place: each part is packed into msgpack.ts's scratch and copied in at once, so an
 * image of N parts costs no allocation per part and no second copy of the whole (joining parts kept apart held the
 * image twice, and 2 000 part buffers at 500 000 keys).
 */
export class ImageWriter {
  private readonly out: GrowingBytes;
  private left: number;

  /** `parts`: how many parts will be added; `expectedBytes`: about how large the image will be (the last one's size). */
  constructor(parts: number, expectedBytes: number) {
    this.out = new GrowingBytes(expectedBytes);
    this.left = parts;
    this.out.advance(writeArrayHeader(this.out.room(5), 0, parts));
  }

  /** Packs `value` as the next part. */
  add(value: unknown): void {
    this.addBytes(packScratch(value));
  }

  /** Adds `bytes`, already encoded, as the next part. */
  addBytes(bytes: Uint8Array): void {
    if (this.left-- <= 0) throw new Error('snapshot image: more parts than announced');
    const at = this.out.length;
    const buf = this.out.room(5 + bytes.byteLength);
    const end = writeBinHeader(buf, at, bytes.byteLength);
    buf.set(bytes, end);
    this.out.advance(end - at + bytes.byteLength);
  }

  finish(): Uint8Array {
    if (this.left !== 0) throw new Error(`snapshot image: ${this.left} announced parts were not added`);
    return this.out.finish();
  }
}
