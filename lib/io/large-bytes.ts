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
  return Buffer.from(new (ArrayBuffer as unknown as ResizableArrayBufferConstructor)(n, { maxByteLength: n }), 0, n);
}
