import fc from 'fast-check';
import { FrameError } from '../../lib/transport/errors.js';
import { FrameKind, FrameReader, frame, type Frame } from '../../lib/transport/frame.js';

function drain(reader: FrameReader, chunk: Buffer): { kind: number; payload: string }[] {
  const out: { kind: number; payload: string }[] = [];
  reader.push(chunk);
  for (let f: Frame | null = reader.next(); f !== null; f = reader.next()) out.push({ kind: f.kind, payload: f.payload.toString('hex') });
  return out;
}

const frames = [
  frame(FrameKind.raft, Buffer.from('hello raft')),
  frame(FrameKind.ping),
  frame(FrameKind.call, Buffer.alloc(300, 7)),
  frame(FrameKind.reply, Buffer.from([1, 2, 3])),
];
const stream = Buffer.concat(frames);
const expected = frames.map((f) => ({ kind: f[4]!, payload: f.subarray(5).toString('hex') }));

describe('FrameReader', () => {
  it('reads several frames from one chunk', () => {
    expect(drain(new FrameReader(), stream)).toEqual(expected);
  });

  it('reassembles frames split at every byte boundary, one and two cuts', () => {
    for (let i = 0; i <= stream.length; i++) {
      const r = new FrameReader();
      expect([...drain(r, stream.subarray(0, i)), ...drain(r, stream.subarray(i))]).toEqual(expected);
    }
    for (let i = 0; i <= stream.length; i += 11) {
      for (let j = i; j <= stream.length; j += 5) {
        const r = new FrameReader();
        const got = [...drain(r, stream.subarray(0, i)), ...drain(r, stream.subarray(i, j)), ...drain(r, stream.subarray(j))];
        expect(got).toEqual(expected);
      }
    }
  });

  it('reassembles frames fed one byte at a time', () => {
    const r = new FrameReader();
    const got: ReturnType<typeof drain> = [];
    for (let i = 0; i < stream.length; i++) got.push(...drain(r, stream.subarray(i, i + 1)));
    expect(got).toEqual(expected);
  });

  it('reassembles any random chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 40 }), (sizes) => {
        const r = new FrameReader();
        const got: ReturnType<typeof drain> = [];
        let at = 0;
        for (const n of sizes) {
          got.push(...drain(r, stream.subarray(at, at + n)));
          at = Math.min(stream.length, at + n);
        }
        got.push(...drain(r, stream.subarray(at)));
        expect(got).toEqual(expected);
      }),
    );
  });

  it('refuses an oversized length from the header alone, before allocating or reading the rest', () => {
    const r = new FrameReader(4096);
    const header = Buffer.alloc(5);
    header.writeUInt32LE(1_000_000_000, 0);
    header[4] = FrameKind.raft;
    const alloc = jest.spyOn(Buffer, 'allocUnsafe');
    try {
      r.push(header.subarray(0, 4));
      expect(() => r.next()).toThrow(new FrameError('frame of 1000000000 bytes exceeds the limit of 4096 bytes'));
      expect(alloc).not.toHaveBeenCalled();
    } finally {
      alloc.mockRestore();
    }
  });

  it('refuses an oversized length split across chunks', () => {
    const r = new FrameReader(100);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(101, 0);
    r.push(header.subarray(0, 2));
    expect(r.next()).toBeNull();
    r.push(header.subarray(2));
    expect(() => r.next()).toThrow(/101 bytes exceeds the limit of 100/);
  });

  it('applies a raised limit to the frames that follow in the same chunk', () => {
    const r = new FrameReader(16);
    const big = frame(FrameKind.raft, Buffer.alloc(100));
    r.push(Buffer.concat([frame(FrameKind.ready), big]));
    expect(r.next()?.kind).toBe(FrameKind.ready);
    r.maxFrameBytes = 1000;
    expect(r.next()?.payload.length).toBe(100);
  });

  it('refuses zero-length frames and unknown kinds', () => {
    expect(() => drain(new FrameReader(), Buffer.from([0, 0, 0, 0]))).toThrow(/length 0/);
    expect(() => drain(new FrameReader(), Buffer.from([1, 0, 0, 0, 0]))).toThrow(/unknown frame kind 0/);
    expect(() => drain(new FrameReader(), Buffer.from([1, 0, 0, 0, 200]))).toThrow(/unknown frame kind 200/);
    // An unknown kind is refused as soon as its byte arrives, before the rest of the frame is buffered.
    const r = new FrameReader();
    r.push(Buffer.from([0, 16, 0, 0, 77]));
    expect(() => r.next()).toThrow(/unknown frame kind 77/);
  });

  it('holds at most one partial frame: a pending frame buffer is sized by its own length', () => {
    const r = new FrameReader();
    const f = frame(FrameKind.call, Buffer.alloc(10_000, 1));
    r.push(f.subarray(0, 100));
    expect(r.next()).toBeNull();
    r.push(f.subarray(100));
    expect(r.next()?.payload.length).toBe(10_000);
    expect(r.next()).toBeNull();
  });

  it('refuses a push before the previous chunk is drained', () => {
    const r = new FrameReader();
    r.push(stream);
    r.next();
    expect(() => r.push(stream)).toThrow(/drained/);
  });
});
