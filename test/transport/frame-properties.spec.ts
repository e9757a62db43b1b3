/**
 * Properties of the frame decoder on hostile input (fast-check): arbitrary and mutated byte streams, cut into
 * arbitrary chunks. frame.spec.ts has the example-based tests; these check what must hold for every input.
 */
import fc from 'fast-check';
import { decodeCall, decodeReply } from '../../lib/transport/call-frames.js';
import { FrameError } from '../../lib/transport/errors.js';
import { FrameKind, FrameReader, frame, isFrameKind } from '../../lib/transport/frame.js';

interface Outcome {
  readonly frames: string[];
  readonly error: string | null;
}

/** The decoder as the spec reads: whole stream at once, header, length checks, kind, body. */
function model(stream: Buffer, max: number): Outcome {
  const frames: string[] = [];
  for (let at = 0; stream.length - at >= 4; ) {
    const len = stream.readUInt32LE(at);
    if (len === 0) return { frames, error: 'frame of length 0 (no kind byte)' };
    if (len > max) return { frames, error: `frame of ${len} bytes exceeds the limit of ${max} bytes` };
    const body = stream.subarray(at + 4, at + 4 + len);
    if (body.length > 0 && !isFrameKind(body[0]!)) return { frames, error: `unknown frame kind ${body[0]}` };
    if (body.length < len) break;
    frames.push(body.toString('hex'));
    at += 4 + len;
  }
  return { frames, error: null };
}

/** What FrameReader makes of `stream` delivered in chunks of the given sizes (the rest in one last chunk). */
function read(stream: Buffer, cuts: readonly number[], max: number): Outcome {
  const reader = new FrameReader(max);
  const frames: string[] = [];
  let at = 0;
  const sizes = [...cuts, stream.length];
  try {
    for (const n of sizes) {
      if (at >= stream.length) break;
      reader.push(stream.subarray(at, Math.min(stream.length, at + Math.max(1, n))));
      at = Math.min(stream.length, at + Math.max(1, n));
      for (let f = reader.next(); f !== null; f = reader.next()) frames.push(f.kind.toString(16).padStart(2, '0') + f.payload.toString('hex'));
    }
  } catch (e) {
    if (!(e instanceof FrameError)) throw e;
    return { frames, error: e.message };
  }
  return { frames, error: null };
}

const MAX = 64;
/** Frames near the limit, some valid, some with lying lengths or kinds; streams of them, then mutated. */
const frameArb = fc.oneof(
  fc.record({ kind: fc.integer({ min: 1, max: 9 }), payload: fc.uint8Array({ maxLength: MAX + 8 }) }).map(({ kind, payload }) => frame(kind as FrameKind, payload)),
  fc.record({ len: fc.oneof(fc.integer({ min: 0, max: MAX + 2 }), fc.constant(0xffffffff), fc.nat()), rest: fc.uint8Array({ maxLength: 80 }) }).map(({ len, rest }) => {
    const b = Buffer.alloc(4 + rest.length);
    b.writeUInt32LE(len >>> 0, 0);
    b.set(rest, 4);
    return b;
  }),
);
const mutation = fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) });
const streamArb = fc
  .record({ frames: fc.array(frameArb, { maxLength: 8 }), mutations: fc.array(mutation, { maxLength: 3 }), cutTo: fc.option(fc.nat()) })
  .map(({ frames, mutations, cutTo }) => {
    const s = Buffer.concat(frames);
    for (const m of mutations) if (s.length > 0) s[m.at % s.length] ^= m.xor;
    return cutTo === null || s.length === 0 ? s : s.subarray(0, cutTo % (s.length + 1));
  });
const cutsArb = fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 30 });

describe('FrameReader on hostile input', () => {
  it('decodes any stream, cut into any chunks, exactly as the spec reads it: the same frames, then the same error', () => {
    fc.assert(
      fc.property(fc.oneof(streamArb, fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b))), cutsArb, (stream, cuts) => {
        expect(read(stream, cuts, MAX)).toEqual(model(stream, MAX));
      }),
      { numRuns: 5000 },
    );
  });

  it('never allocates more than the limit, nor for a frame whose length or kind is refused', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, (stream, cuts) => {
        const alloc = jest.spyOn(Buffer, 'allocUnsafe');
        try {
          read(stream, cuts, MAX);
          const sizes = alloc.mock.calls.map((c) => c[0] as number);
          for (const n of sizes) expect(n).toBeLessThanOrEqual(MAX);
          // At most one buffer per frame that spans chunks, and none for the frame that was refused.
          const want = model(stream, MAX);
          expect(sizes.length).toBeLessThanOrEqual(want.frames.length + (want.error === null ? 1 : 0));
        } finally {
          alloc.mockRestore();
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('holds at most one partial frame of a slow peer feeding a byte at a time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX }), fc.integer({ min: 1, max: 9 }), (len, kind) => {
        const reader = new FrameReader(MAX);
        const header = Buffer.alloc(5);
        header.writeUInt32LE(len, 0);
        header[4] = kind;
        const alloc = jest.spyOn(Buffer, 'allocUnsafe');
        try {
          // Header then body one byte per chunk, stopping one byte short: one buffer of the declared size, made
          // once the kind byte is in (none when the kind byte was the missing one).
          for (let i = 0; i < 4 + len - 1; i++) {
            reader.push(i < 5 ? header.subarray(i, i + 1) : Buffer.from([i & 0xff]));
            expect(reader.next()).toBeNull();
          }
          expect(alloc.mock.calls.map((c) => c[0])).toEqual(len > 1 ? [len] : []);
        } finally {
          alloc.mockRestore();
        }
      }),
    );
  });
});

describe('CALL and REPLY payloads on hostile input', () => {
  it('decode or throw FrameError, nothing else, for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const decode of [decodeCall, decodeReply]) {
          try {
            decode(Buffer.from(bytes));
          } catch (e) {
            expect(e).toBeInstanceOf(FrameError);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});
