import { allocBytes, LARGE_BYTES } from '../../lib/io/large-bytes';
import { Packr } from 'msgpackr';
import { pack, packOwn, packScratch, unpack } from '../../lib/cluster/msgpack';
import { decodeImage, encodeImage, encodePayload } from '../../lib/cluster/state/entry-codec';

/** A value that packs to about `bytes` bytes. */
function valueOf(bytes: number): { rows: string[] } {
  return { rows: Array.from({ length: Math.ceil(bytes / 100) }, (_, i) => `${i}`.padEnd(96, 'x')) };
}

describe('msgpack codec buffers', () => {
  it('small values packed after a large one are not views into a large buffer', () => {
    const big = pack(valueOf(300_000));
    expect(unpack(big)).toEqual(valueOf(300_000));
    for (let i = 0; i < 100; i++) {
      const p = encodePayload({ module: 'kv', command: { op: 'put', key: `k${i}`, value: i }, time: i });
      expect(p.buffer.byteLength).toBeLessThanOrEqual(LARGE_BYTES);
    }
  });

  it('a large snapshot part neither pins nor grows the buffer later payloads share', () => {
    const head = encodeImage(valueOf(200_000));
    expect(decodeImage(head)).toEqual(valueOf(200_000));
    // The part has a buffer of its own, mapped by V8 rather than malloc'd (see large-bytes.ts).
    expect(head.byteOffset).toBe(0);
    expect(head.buffer.byteLength).toBe(head.byteLength);
    expect((head.buffer as ArrayBuffer & { resizable: boolean }).resizable).toBe(true);
    const p = encodePayload({ module: 'kv', command: { op: 'put', key: 'a', value: 1 }, time: 1 });
    expect(p.buffer.byteLength).toBeLessThanOrEqual(LARGE_BYTES);
  });

  it('image parts stay intact while later parts and payloads are packed', () => {
    const parts = [1_000, 50_000, 2_000_000, 10].map((n) => ({ n, bytes: packOwn(valueOf(n)) }));
    for (let i = 0; i < 50; i++) pack(valueOf(i * 1000));
    for (const { n, bytes } of parts) expect(unpack(bytes)).toEqual(valueOf(n));
  });

  it('values packed between two scratch packs, here or by another msgpackr user, are not overwritten', () => {
    packScratch(valueOf(10_000));
    const ours = pack({ a: 1 });
    const theirs = new Packr().pack({ b: 2 });
    packScratch(valueOf(10_000));
    packScratch(valueOf(100_000));
    expect(unpack(ours)).toEqual({ a: 1 });
    expect(unpack(theirs)).toEqual({ b: 2 });
  });

  it('an unpackable value leaves the codec working', () => {
    expect(() => packOwn({ f: 1n << 70n })).toThrow();
    expect(unpack(pack({ a: 1 }))).toEqual({ a: 1 });
  });

  it('allocBytes maps large buffers and leaves small ones to Buffer', () => {
    const small = allocBytes(LARGE_BYTES - 1);
    const large = allocBytes(LARGE_BYTES);
    expect(small.byteLength).toBe(LARGE_BYTES - 1);
    expect(large.byteLength).toBe(LARGE_BYTES);
    expect((small.buffer as ArrayBuffer & { resizable: boolean }).resizable).toBe(false);
    expect((large.buffer as ArrayBuffer & { resizable: boolean }).resizable).toBe(true);
    large.fill(7);
    expect(large.readUInt32BE(LARGE_BYTES - 4)).toBe(0x07070707);
  });
});
