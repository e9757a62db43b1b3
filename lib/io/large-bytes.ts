/**
 * Large short-lived buffers (snapshot images and their parts) without the C heap. A Buffer is a malloc'd block; glibc
 * maps a block this large on its own (mmap), and freeing one raises glibc's mmap threshold to that block's size for
 * the rest of the process. From then on every block up to that size (socket reads, write batches, the next image)
 * comes from the heap instead, and an image freed in the middle of the heap leaves a hole that small, long-lived
 * blocks keep from ever being returned: resident memory that only grows (docs/benchmarks.md, `rss_growth_mb`).
 *
 * A resizable ArrayBuffer is mapped by V8 itself, page by page, and unmapped when collected; glibc never sees it.
 */

/** From this size up, bytes are mapped rather than malloc'd: half glibc's default mmap threshold (128 KiB). */
export const LARGE_BYTES = 64 * 1024;

interface ResizableArrayBufferConstructor {
  new (byteLength: number, options: { maxByteLength: number }): ArrayBuffer;
}

/** `n` uninitialized bytes; mapped by V8 when `n` ≥ LARGE_BYTES, else an ordinary Buffer. */
export function allocBytes(n: number): Buffer {
  if (n < LARGE_BYTES) return Buffer.allocUnsafe(n);
  return Buffer.from(reserve(n, n), 0, n);
}

interface ResizableArrayBuffer extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(byteLength: number): void;
}

/**
 * Bytes appended into one mapped buffer that grows in place (a resizable ArrayBuffer reserves its address range
 * up front and commits pages as it grows), for a result whose size is known only at the end: a snapshot image.
 */
export class GrowingBytes {
  private ab: ResizableArrayBuffer;
  private view: Buffer;
  private used = 0;

  /** `expected`: about how many bytes will be appended; twice that is reserved before anything is copied. */
  constructor(expected: number) {
    this.ab = reserve(0, Math.max(LARGE_BYTES, 2 * expected));
    this.view = Buffer.from(this.ab, 0, 0);
  }

  get length(): number {
    return this.used;
  }

  /** Makes room for `n` more bytes and returns the buffer to write them into, at `length`. */
  room(n: number): Buffer {
    const need = this.used + n;
    if (need > this.ab.byteLength) {
      const max = this.ab.maxByteLength;
      const size = need > max ? need : Math.min(max, Math.max(need, 2 * this.ab.byteLength, LARGE_BYTES));
      if (size <= max) {
        this.ab.resize(size);
      } else {
        const bigger = reserve(size, 2 * size);
        new Uint8Array(bigger).set(this.view.subarray(0, this.used));
        this.ab = bigger;
      }
      this.view = Buffer.from(this.ab, 0, this.ab.byteLength);
    }
    return this.view;
  }

  /** Counts `n` bytes written into the buffer room() returned. */
  advance(n: number): void {
    this.used += n;
  }

  /** The bytes appended, in a buffer cut to their size (the pages past it are returned). */
  finish(): Buffer {
    this.ab.resize(this.used);
    return Buffer.from(this.ab, 0, this.used);
  }
}

function reserve(byteLength: number, maxByteLength: number): ResizableArrayBuffer {
  return new (ArrayBuffer as unknown as ResizableArrayBufferConstructor)(byteLength, { maxByteLength }) as ResizableArrayBuffer;
}
