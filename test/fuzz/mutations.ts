import type { Prng } from '../support/prng.js';

/**
 * Ways to spoil a recorded frame (header included) or make one up. Each returns new bytes and the name of what it
 * did, for the summary. Lengths are read and written as the wire does: u32 little-endian, counting the kind byte.
 */
export type Mutator = (rng: Prng, frame: Buffer, other: Buffer) => Buffer;

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

/** A length field that lies: zero, one past a limit, huge, or off by a little either way. */
function lyingLength(rng: Prng, honest: number, limits: readonly number[]): number {
  switch (rng.int(0, 5)) {
    case 0:
      return 0;
    case 1:
      return rng.pick(limits) + rng.int(1, 3);
    case 2:
      return rng.pick([0xffffffff, 0x80000000, 0x7fffffff, rng.int(0, 0x100000000)]);
    case 3:
      return Math.max(0, honest + rng.int(-8, 9));
    default:
      return honest + rng.int(1, 5000); // promises more than it sends: the reader must wait, not over-allocate
  }
}

export const MUTATORS: Readonly<Record<string, Mutator>> = {
  'bit flips': (rng, f) => {
    const out = Buffer.from(f);
    for (let i = rng.int(1, 5); i > 0; i--) {
      const at = rng.int(0, out.length);
      out[at] = out[at]! ^ (1 << rng.int(0, 8));
    }
    return out;
  },
  'byte overwrite': (rng, f) => {
    const out = Buffer.from(f);
    for (let i = rng.int(1, 4); i > 0; i--) out[rng.int(0, out.length)] = rng.pick([0, 0xff, 0x7f, 0x80, rng.int(0, 256)]);
    return out;
  },
  'payload flip': (rng, f) => {
    // Spoils the body only: the frame header stays honest, so the decoders behind it get the damage.
    const out = Buffer.from(f);
    if (out.length <= 5) return out;
    for (let i = rng.int(1, 4); i > 0; i--) {
      const at = rng.int(5, out.length);
      out[at] = out[at]! ^ rng.int(1, 256);
    }
    return out;
  },
  truncation: (rng, f) => f.subarray(0, rng.int(0, f.length)),
  'truncated body, honest header': (rng, f) => {
    // The header says the old size; the body is cut short and padded back to it, so the frame arrives whole.
    if (f.length <= 6) return Buffer.from(f);
    const cut = rng.int(5, f.length - 1);
    const out = Buffer.concat([f.subarray(0, cut), Buffer.alloc(f.length - cut, rng.int(0, 256))]);
    return out;
  },
  'shortened frame': (rng, f) => {
    // Cut the body and fix the header: a well-framed payload that ends early for its decoder.
    if (f.length <= 5) return Buffer.from(f);
    const body = f.subarray(4, rng.int(5, f.length));
    return Buffer.concat([u32(body.length), body]);
  },
  'extended frame': (rng, f) => {
    const extra = Buffer.alloc(rng.int(1, 64));
    for (let i = 0; i < extra.length; i++) extra[i] = rng.int(0, 256);
    const body = Buffer.concat([f.subarray(4), extra]);
    return Buffer.concat([u32(body.length), body]);
  },
  'length lie': (rng, f) => Buffer.concat([u32(lyingLength(rng, f.length - 4, [4096, 16 * 1024 * 1024])), f.subarray(4)]),
  'kind change': (rng, f) => {
    const out = Buffer.from(f);
    if (out.length > 4) out[4] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 255]);
    return out;
  },
  splice: (rng, f, other) => Buffer.concat([f.subarray(0, rng.int(0, f.length + 1)), other.subarray(rng.int(0, other.length + 1))]),
  'spliced bodies': (rng, f, other) => {
    const body = Buffer.concat([f.subarray(4, rng.int(4, f.length + 1)), other.subarray(rng.int(4, other.length + 1))]);
    return Buffer.concat([u32(body.length), body]);
  },
  duplication: (rng, f) => Buffer.concat(Array.from({ length: rng.int(2, 4) }, () => f)),
  'inserted bytes': (rng, f) => {
    const at = rng.int(0, f.length + 1);
    const junk = Buffer.alloc(rng.int(1, 16));
    for (let i = 0; i < junk.length; i++) junk[i] = rng.int(0, 256);
    return Buffer.concat([f.subarray(0, at), junk, f.subarray(at)]);
  },
  'deleted bytes': (rng, f) => {
    const at = rng.int(0, f.length);
    return Buffer.concat([f.subarray(0, at), f.subarray(Math.min(f.length, at + rng.int(1, 16)))]);
  },
};

export const MUTATOR_NAMES = Object.keys(MUTATORS);

/** A frame made up from nothing: a random kind (some unknown) and random payload, honest or lying length. */
export function randomFrame(rng: Prng): Buffer {
  const body = Buffer.alloc(1 + (rng.chance(0.8) ? rng.int(0, 300) : rng.int(300, 6000)));
  for (let i = 0; i < body.length; i++) body[i] = rng.int(0, 256);
  body[0] = rng.chance(0.85) ? rng.int(1, 10) : rng.int(0, 256);
  const length = rng.chance(0.8) ? body.length : lyingLength(rng, body.length, [4096, 16 * 1024 * 1024]);
  return Buffer.concat([u32(length), body]);
}

/** Bytes with no framing at all. */
export function randomBytes(rng: Prng): Buffer {
  const out = Buffer.alloc(rng.int(1, rng.chance(0.9) ? 64 : 2048));
  for (let i = 0; i < out.length; i++) out[i] = rng.int(0, 256);
  return out;
}
