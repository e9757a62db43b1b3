import { FrameError } from './errors.js';

/**
 * Frames on the wire: u32 LE length of what follows | u8 kind | payload. The length counts the kind byte, so it is
 * at least 1.
 */

export const FrameKind = {
  /** Dialer → listener: version, ids, nonce. */
  hello: 1,
  /** Listener → dialer: its id, nonce, MAC. */
  challenge: 2,
  /** Dialer → listener: MAC. */
  auth: 3,
  /** Listener → dialer: authenticated; frames that follow are traffic. */
  ready: 4,
  /** Either side, during the handshake: why it is refusing (utf8), then it closes. */
  reject: 5,
  raft: 6,
  call: 7,
  reply: 8,
  /** Keepalive, empty; sent when a side has sent nothing for a while. */
  ping: 9,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const KIND_NAMES: readonly string[] = ['', 'HELLO', 'CHALLENGE', 'AUTH', 'READY', 'REJECT', 'RAFT', 'CALL', 'REPLY', 'PING'];

export function isFrameKind(k: number): k is FrameKind {
  return k >= FrameKind.hello && k <= FrameKind.ping;
}

export function kindName(k: number): string {
  return KIND_NAMES[k] ?? `kind ${k}`;
}

export const FRAME_HEADER_BYTES = 5;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Limit before authentication: an unauthenticated peer cannot make us allocate more than this per connection. */
export const PRE_AUTH_MAX_FRAME_BYTES = 4096;

export interface Frame {
  readonly kind: FrameKind;
  /** May be a view into the socket chunk: consume or copy it before the next chunk. */
  readonly payload: Buffer;
}

/** A buffer with the frame header written; the caller fills `payloadBytes` bytes from FRAME_HEADER_BYTES. */
export function allocFrame(kind: FrameKind, payloadBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  buf.writeUInt32LE(payloadBytes + 1, 0);
  buf[4] = kind;
  return buf;
}

export function frame(kind: FrameKind, payload: Uint8Array = EMPTY): Buffer {
  const buf = allocFrame(kind, payload.byteLength);
  buf.set(payload, FRAME_HEADER_BYTES);
  return buf;
}

const EMPTY = new Uint8Array(0);

/**
 * Reassembles frames from socket chunks. Usage: push(chunk), then next() until it returns null, then the next
 * chunk. It holds at most the current chunk plus one partial frame, whose buffer is allocated only after its declared
 * length has passed `maxFrameBytes` and its kind byte has arrived and is known — so a hostile length prefix or kind
 * costs nothing, however the bytes are cut into chunks. `maxFrameBytes` may be raised between next() calls (after
 * authentication), which applies to the frames that follow in the same chunk.
 */
export class FrameReader {
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Header bytes of a header split across chunks. */
  private readonly header = Buffer.alloc(4);
  private headerFill = 0;
  /** The partial frame (kind + payload) once its length and kind are known and it spans chunks. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  /** Length of a frame whose header has arrived but not a byte of its body: nothing is allocated for it yet. */
  private awaiting = 0;

  constructor(public maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes of the current chunk not consumed yet. */
  get unread(): number {
    return this.chunk.length - this.pos;
  }

  push(chunk: Buffer): void {
    if (this.pos < this.chunk.length) throw new Error('FrameReader.push before the previous chunk was drained by next()');
    this.chunk = chunk;
    this.pos = 0;
  }

  next(): Frame | null {
    const chunk = this.chunk;
    if (this.body !== null) {
      const n = Math.min(this.body.length - this.bodyFill, chunk.length - this.pos);
      chunk.copy(this.body, this.bodyFill, this.pos, this.pos + n);
      this.pos += n;
      this.bodyFill += n;
      if (this.bodyFill < this.body.length) return null;
      const body = this.body;
      this.body = null;
      return toFrame(body);
    }
    let length = this.awaiting;
    if (length === 0) {
      if (this.headerFill === 0 && chunk.length - this.pos >= 4) {
        length = chunk.readUInt32LE(this.pos);
        this.pos += 4;
      } else {
        const n = Math.min(4 - this.headerFill, chunk.length - this.pos);
        chunk.copy(this.header, this.headerFill, this.pos, this.pos + n);
        this.pos += n;
        this.headerFill += n;
        if (this.headerFill < 4) return null;
        this.headerFill = 0;
        length = this.header.readUInt32LE(0);
      }
      this.check(length);
    }
    if (this.pos === chunk.length) {
      this.awaiting = length;
      return null;
    }
    this.awaiting = 0;
    // The kind is checked as soon as its byte is here, before anything is buffered for a frame refused anyway.
    checkKind(chunk[this.pos]);
    if (chunk.length - this.pos >= length) {
      const body = chunk.subarray(this.pos, this.pos + length);
      this.pos += length;
      return toFrame(body);
    }
    this.body = Buffer.allocUnsafe(length);
    this.bodyFill = chunk.length - this.pos;
    chunk.copy(this.body, 0, this.pos);
    this.pos = chunk.length;
    return null;
  }

  private check(length: number): void {
    if (length === 0) throw new FrameError('frame of length 0 (no kind byte)');
    if (length > this.maxFrameBytes) {
      throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`);
    }
  }
}

function checkKind(kind: number): void {
  if (!isFrameKind(kind)) throw new FrameError(`unknown frame kind ${kind}`);
}

function toFrame(body: Buffer): Frame {
  const kind = body[0];
  checkKind(kind);
  return { kind: kind as FrameKind, payload: body.subarray(1) };
}
