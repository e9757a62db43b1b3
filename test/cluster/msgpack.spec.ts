import { allocBytes, LARGE_BYTES } from '../../lib/io/large-bytes';
import { Packr } from 'msgpackr';
import { pack, packScratch, unpack } from '../../lib/cluster/msgpack';
import { decodeImage, encodePayload, ImageWriter } from '../../lib/cluster/state/entry-codec';

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

  it('an image with a large part is mapped, and later payloads still get small buffers', () => {
    const w = new ImageWriter(2, 0);
    w.add(valueOf(200_000));
    w.add(valueOf(3_000_000)); // larger than the scratch: msgpackr grows a buffer once, the scratch follows
    const image = w.finish();
    const [head, big] = decodeImage(image) as Uint8Array[];
    expect(decodeImage(head!)).toEqual(valueOf(200_000));
    expect(decodeImage(big!)).toEqual(valueOf(3_000_000));
    // One buffer of the image's size, mapped by V8 rather than malloc'd (see large-bytes.ts).
    expect(image.buffer.byteLength).toBe(image.byteLength);
    expect((image.buffer as ArrayBuffer & { resizable: boolean }).resizable).toBe(true);
    const p = encodePayload({ module: 'kv', command: { op: 'put', key: 'a', value: 1 }, time: 1 });
    expect(p.buffer.byteLength).toBeLessThanOrEqual(LARGE_BYTES);
  });

  it('large values keep their bytes while later values are packed', () => {
    const kept = [1_000, 50_000, 2_000_000, 10].map((n) => ({ n, bytes: pack(valueOf(n)) }));
    for (let i = 0; i < 50; i++) packScratch(valueOf(i * 1000));
    for (let i = 0; i < 50; i++) pack(valueOf(i * 1000));
    for (const { n, bytes } of kept) expect(unpack(bytes)).toEqual(valueOf(n));
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
    expect(() => packScratch({ f: 1n << 70n })).toThrow();
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
