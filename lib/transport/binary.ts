import { FrameError } from './errors.js';

/**
 * Little-endian field helpers shared by the codecs. Integers that can exceed 32 bits (terms, indexes, offsets) are
 * u64 held in JS numbers: low u32 then high u32, so they read as plain u64 elsewhere; only non-negative safe integers
 * (below 2^53) are allowed, which Raft's values stay far below.
 */

const TWO_32 = 0x1_0000_0000;
/** High word of 2^53 - 1. */
const MAX_SAFE_HIGH = 0x1f_ffff;
export const U16_MAX = 0xffff;

export function checkU64(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${field} is not a non-negative safe integer: ${value}`);
}

/** Writes a value checkU64 accepted (unchecked here: the hot path validates once, before writing). */
export function putU64(buf: Buffer, offset: number, value: number): number {
  buf.writeUInt32LE(value % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
  return offset + 8;
}

/** Bytes a u16-length-prefixed utf8 string takes; throws RangeError when it is too long to encode. */
export function str16Size(s: string, field: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > U16_MAX) throw new RangeError(`${field} is ${n} bytes in utf8; at most ${U16_MAX} fit`);
  return 2 + n;
}

export function putStr16(buf: Buffer, offset: number, s: string): number {
  const n = buf.write(s, offset + 2, 'utf8');
  buf.writeUInt16LE(n, offset);
  return offset + 2 + n;
}

/** A Buffer view of `bytes` without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A bounds-checked cursor over untrusted bytes. Every read checks the remaining length first and throws FrameError
 * naming the field, so a decoder built on it cannot read out of bounds or size an allocation from an unchecked
 * length.
 */
export class ByteReader {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    /** What is being decoded, for error messages ('raft message', 'HELLO'). */
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Offset of the next byte to read. */
  get offset(): number {
    return this.pos;
  }

  /** Throws unless at least `n` bytes remain. */
  need(n: number, field: string): void {
    if (n > this.buf.length - this.pos) {
      throw new FrameError(
        `${this.what}: ${field} needs ${n} bytes but only ${this.buf.length - this.pos} remain (at byte ${this.pos})`,
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++];
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): number {
    this.need(8, field);
    const low = this.buf.readUInt32LE(this.pos);
    const high = this.buf.readUInt32LE(this.pos + 4);
    if (high > MAX_SAFE_HIGH) throw new FrameError(`${this.what}: ${field} at byte ${this.pos} exceeds 2^53 - 1`);
    this.pos += 8;
    return high * TWO_32 + low;
  }

  str16(field: string): string {
    const n = this.u16(field);
    this.need(n, field);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A copy, so the result does not pin the (possibly 64 KiB) socket chunk it came from. */
  copy(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** Skips `n` bytes, checked like a read; returns the offset they start at. */
  skip(n: number, field: string): number {
    this.need(n, field);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** A view into the input, for fields consumed before the input is released (nonces, MACs). */
  view(n: number, field: string): Buffer {
    this.need(n, field);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Everything left, as a copy. */
  rest(): Uint8Array {
    return this.copy(this.remaining, 'rest');
  }

  /** Throws if bytes remain: trailing data means the sender speaks another layout. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new FrameError(`${this.what}: ${this.buf.length - this.pos} unexpected trailing bytes at byte ${this.pos}`);
    }
  }
}
