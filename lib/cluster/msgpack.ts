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

/** What msgpackr starts with, and what it is given back after a large value. */
const SMALL_BUFFER = 8192;
/** Those small buffers are cut from slabs of this size (one allocation per seven), below LARGE_BYTES. */
const SLAB_BYTES = 7 * SMALL_BUFFER;
let slab = Buffer.alloc(0);
let slabUsed = 0;

/** Where large values are packed before being copied out: mapped, reused, grown to the largest value. */
let scratch: Buffer | null = null;

/** `value` packed; a small one is a view into msgpackr's working buffer, valid for good (msgpackr never reuses it). */
export function pack(value: unknown): Buffer {
  const view = packr.pack(value);
  return view.buffer.byteLength > LARGE_BYTES ? ownCopy(view) : view;
}

/**
 * `value` packed into a mapped scratch buffer that the next packScratch overwrites: for a value that is
 * copied at once (a snapshot image part, into the image). Neither msgpackr's growth nor the result is a malloc'd
 * block, and nothing is allocated per value.
 */
export function packScratch(value: unknown): Uint8Array {
  scratch ??= allocBytes(LARGE_BYTES * 16);
  packr.useBuffer(scratch);
  let view: Buffer;
  try {
    view = packr.pack(value);
  } finally {
    // Whatever comes next packs into a buffer of its own again, never into the scratch.
    packr.useBuffer(freshBuffer());
  }
  // A value larger than the scratch made msgpackr allocate a larger buffer once; the next one goes to a mapped one.
  if (view.buffer !== scratch.buffer) scratch = allocBytes(view.buffer.byteLength);
  return view;
}

export function unpack(data: Uint8Array): unknown {
  return packr.unpack(data);
}

/** A copy of `view` (in msgpackr's grown buffer), after which msgpackr packs into a fresh small buffer. */
function ownCopy(view: Uint8Array): Buffer {
  const own = allocBytes(view.byteLength);
  own.set(view);
  packr.useBuffer(freshBuffer());
  return own;
}

/**
 * A small buffer nothing has been packed into. Never one used before: msgpackr starts writing at its start, and
 * earlier values (log entry payloads, or another msgpackr user's in this process) may be views into a used one.
 */
function freshBuffer(): Buffer {
  if (slabUsed + SMALL_BUFFER > slab.byteLength) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  slabUsed += SMALL_BUFFER;
  return slab.subarray(slabUsed - SMALL_BUFFER, slabUsed);
}
