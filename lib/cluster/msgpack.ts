import { Packr } from 'msgpackr';
import { allocBytes, LARGE_BYTES } from '../io/large-bytes.js';

/**
 * The library's one msgpack codec. Records off: plain maps and arrays decode the same on every node and every version
 * of this library.
 *
 * msgpackr packs into one working buffer shared by every Packr in the process and hands out views into it. A value
 * larger than a quarter of that buffer replaces it with one four times the value's size, and it never shrinks: after
 * one snapshot head with many client sessions (131 KB), every log entry's payload was a view into a 512 KiB buffer,
 * each such buffer lived until its last entry was compacted, and each was a malloc'd block large enough to raise
 * glibc's mmap threshold when freed (see large-bytes.ts). So a value that made the buffer grow gets a buffer of its
 * own, and msgpackr a small one again.
 */
const packr = new Packr({ useRecords: false, moreTypes: false });

/** What msgpackr starts with. */
const SMALL_BUFFER = 8192;

/** Where snapshot image parts are packed before being copied out: mapped, reused, grown to the largest part. */
let scratch: Buffer | null = null;

/** `value` packed; a small one is a view into msgpackr's working buffer, valid for good (msgpackr never reuses it). */
export function pack(value: unknown): Buffer {
  const view = packr.pack(value);
  return view.buffer.byteLength > LARGE_BYTES ? ownCopy(view) : view;
}

/**
 * `value` packed into a buffer of its own, for large values kept for a while (snapshot image parts): packed in a
 * mapped scratch buffer and copied out, so that neither msgpackr's growth nor the result is a large malloc'd block.
 */
export function packOwn(value: unknown): Buffer {
  scratch ??= allocBytes(LARGE_BYTES * 16);
  packr.useBuffer(scratch);
  let view: Buffer;
  try {
    view = packr.pack(value);
  } catch (e) {
    packr.useBuffer(Buffer.allocUnsafeSlow(SMALL_BUFFER));
    throw e;
  }
  // A part larger than the scratch made msgpackr allocate a larger buffer once; the next part goes to a mapped one.
  if (view.buffer !== scratch.buffer) scratch = allocBytes(view.buffer.byteLength);
  return ownCopy(view);
}

export function unpack(data: Uint8Array): unknown {
  return packr.unpack(data);
}

/** A copy of `view`, after which msgpackr packs into a fresh small buffer. */
function ownCopy(view: Uint8Array): Buffer {
  const own = allocBytes(view.byteLength);
  own.set(view);
  packr.useBuffer(Buffer.allocUnsafeSlow(SMALL_BUFFER));
  return own;
}
