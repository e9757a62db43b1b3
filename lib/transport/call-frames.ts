import { ByteReader, putStr16, str16Size } from './binary.js';
import { FrameError } from './errors.js';
import { FRAME_HEADER_BYTES, FrameKind, allocFrame } from './frame.js';

/**
 * Request/response frames that share the peer connection with Raft traffic:
 *
 *   CALL  u32 request id | payload
 *   REPLY u32 request id | u8 status (0 ok, 1 error) | error only: str16 message | payload
 *
 * Request ids are per connection, so many calls can be in flight and answered in any order.
 */

export const REPLY_OK = 0;
export const REPLY_ERROR = 1;
/** Error messages are cut to this many characters; the payload carries the full encoded error when there is one. */
const MAX_ERROR_MESSAGE_CHARS = 1000;

export function callFrame(id: number, payload: Uint8Array): Buffer {
  const buf = allocFrame(FrameKind.call, 4 + payload.byteLength);
  buf.writeUInt32LE(id, FRAME_HEADER_BYTES);
  buf.set(payload, FRAME_HEADER_BYTES + 4);
  return buf;
}

export function okReplyFrame(id: number, payload: Uint8Array): Buffer {
  const buf = allocFrame(FrameKind.reply, 5 + payload.byteLength);
  buf.writeUInt32LE(id, FRAME_HEADER_BYTES);
  buf[FRAME_HEADER_BYTES + 4] = REPLY_OK;
  buf.set(payload, FRAME_HEADER_BYTES + 5);
  return buf;
}

export function errorReplyFrame(id: number, message: string, payload: Uint8Array): Buffer {
  const text = message.slice(0, MAX_ERROR_MESSAGE_CHARS);
  const buf = allocFrame(FrameKind.reply, 5 + str16Size(text, 'error message') + payload.byteLength);
  buf.writeUInt32LE(id, FRAME_HEADER_BYTES);
  buf[FRAME_HEADER_BYTES + 4] = REPLY_ERROR;
  const o = putStr16(buf, FRAME_HEADER_BYTES + 5, text);
  buf.set(payload, o);
  return buf;
}

export interface Call {
  readonly id: number;
  readonly payload: Uint8Array;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly payload: Uint8Array }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly payload: Uint8Array };

export function decodeCall(payload: Buffer): Call {
  const r = new ByteReader(payload, 'CALL');
  return { id: r.u32('request id'), payload: r.rest() };
}

export function decodeReply(payload: Buffer): Reply {
  const r = new ByteReader(payload, 'REPLY');
  const id = r.u32('request id');
  const status = r.u8('status');
  if (status === REPLY_OK) return { id, ok: true, payload: r.rest() };
  if (status === REPLY_ERROR) {
    const message = r.str16('error message');
    return { id, ok: false, message, payload: r.rest() };
  }
  throw new FrameError(`REPLY: unknown status ${status}`);
}
