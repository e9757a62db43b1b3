import { allocBytes } from '../../io/large-bytes.js';
import { pack, packOwn, unpack } from '../msgpack.js';
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

/** A part of a snapshot image, in a buffer of its own (see msgpack.ts). */
export function encodeImage(image: unknown): Uint8Array {
  return packOwn(image);
}

export function decodeImage(data: Uint8Array): unknown {
  return unpack(data);
}

/** Bytes of the msgpack header that starts an array of `n` elements. */
function arrayHeaderBytes(n: number): number {
  return n < 0x10 ? 1 : n < 0x1_0000 ? 3 : 5;
}

/** Bytes of the msgpack header that starts a bin of `n` bytes. */
function binHeaderBytes(n: number): number {
  return n < 0x100 ? 2 : n < 0x1_0000 ? 3 : 5;
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

/** Bytes copied between two pauses while an image is joined (~0.2 ms of copying). */
const JOIN_STEP = 256 * 1024;

/**
 * The same bytes as `encodeImage(parts)` (a msgpack array of bins), written straight into one buffer of the final
 * size: msgpackr would grow its buffer and copy the parts more than once, all on the event loop. With `pause`, it
 * is awaited after each 256 KiB copied.
 */
export async function joinImage(parts: readonly Uint8Array[], pause?: () => Promise<void>): Promise<Uint8Array> {
  const out = allocJoined(parts);
  let p = writeArrayHeader(out, 0, parts.length);
  let since = 0;
  for (const part of parts) {
    if (pause && since >= JOIN_STEP) {
      await pause();
      since = 0;
    }
    p = writeBinHeader(out, p, part.byteLength);
    out.set(part, p);
    p += part.byteLength;
    since += part.byteLength;
  }
  return out;
}

/** joinImage without pauses. */
export function joinImageSync(parts: readonly Uint8Array[]): Uint8Array {
  const out = allocJoined(parts);
  let p = writeArrayHeader(out, 0, parts.length);
  for (const part of parts) {
    p = writeBinHeader(out, p, part.byteLength);
    out.set(part, p);
    p += part.byteLength;
  }
  return out;
}

function allocJoined(parts: readonly Uint8Array[]): Buffer {
  let total = arrayHeaderBytes(parts.length);
  for (const part of parts) total += binHeaderBytes(part.byteLength) + part.byteLength;
  return allocBytes(total);
}
