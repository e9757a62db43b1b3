import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import {
  decodeRecords,
  encodeRecords,
  sealBatch,
  encodedSize,
  RECORD_HEADER_BYTES,
  WAL_MAGIC,
  WAL_VERSION,
  type WalRecord,
} from '../../lib/storage/record.js';

const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const recordArb: fc.Arbitrary<WalRecord> = fc.oneof(
  fc.record({
    type: fc.constant('entry' as const),
    entry: fc.record({ term: u64, index: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), data: fc.uint8Array({ maxLength: 300 }) }),
  }),
  fc.record({ type: fc.constant('hardState' as const), hardState: fc.record({ term: u64, vote: fc.string({ unit: 'binary', maxLength: 40 }), commit: u64 }) }),
  fc.record({ type: fc.constant('snapshotMarker' as const), index: u64, term: u64, keep: fc.boolean() }),
  fc.record({ type: fc.constant('segmentHeader' as const), magic: fc.constant(WAL_MAGIC), version: fc.constant(WAL_VERSION), firstIndex: u64 }),
);

/** Records as plain data (entry data as arrays) for comparison. */
function norm(records: readonly WalRecord[]): unknown[] {
  return records.map((r) => (r.type === 'entry' ? { ...r, entry: { ...r.entry, data: [...r.entry.data] } } : r));
}

function sample(): { records: WalRecord[]; bytes: Buffer; offsets: number[] } {
  const records: WalRecord[] = [
    { type: 'segmentHeader', magic: WAL_MAGIC, version: WAL_VERSION, firstIndex: 1 },
    { type: 'entry', entry: { term: 1, index: 1, data: Buffer.from('first entry') } },
    { type: 'hardState', hardState: { term: 1, vote: 'node-1', commit: 1 } },
    { type: 'entry', entry: { term: 2, index: 2, data: Buffer.from('second entry, a little longer') } },
    { type: 'snapshotMarker', index: 2, term: 2, keep: true },
  ];
  const offsets: number[] = [];
  let at = 0;
  for (const r of records) {
    offsets.push(at);
    at += encodedSize(r);
  }
  return { records, bytes: encodeRecords(records), offsets };
}

describe('record codec', () => {
  it('round-trips every record type, including u64 values up to 2^53-1 and utf8 votes', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 20 }), (records) => {
        const bytes = encodeRecords(records);
        expect(bytes.length).toBe(records.reduce((n, r) => n + encodedSize(r), 0));
        const out = decodeRecords(bytes);
        expect(out.end).toEqual({ kind: 'clean' });
        expect(norm(out.records.map((d) => d.record))).toEqual(norm(records));
      }),
    );
  });

  it('reports the offset and size of each record', () => {
    const { bytes, offsets } = sample();
    const out = decodeRecords(bytes);
    expect(out.records.map((r) => r.offset)).toEqual(offsets);
    expect(out.records.reduce((n, r) => n + r.size, 0)).toBe(bytes.length);
  });

  it('refuses values that do not fit a safe integer', () => {
    expect(() => encodeRecords([{ type: 'snapshotMarker', index: 2 ** 53, term: 1, keep: false }])).toThrow(RangeError);
    expect(() => encodeRecords([{ type: 'snapshotMarker', index: -1, term: 1, keep: false }])).toThrow(RangeError);
  });

  it('calls any cut inside the last record a torn tail at that record', () => {
    const { bytes, records, offsets } = sample();
    const lastStart = offsets.at(-1) as number;
    for (let cut = lastStart + 1; cut < bytes.length; cut++) {
      const out = decodeRecords(bytes.subarray(0, cut));
      expect(out.end).toMatchObject({ kind: 'torn', offset: lastStart });
      expect(out.records).toHaveLength(records.length - 1);
    }
  });

  it('calls a cut at every byte a clean end or a torn tail, never corruption', () => {
    const { bytes, offsets } = sample();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const out = decodeRecords(bytes.subarray(0, cut));
      const complete = offsets.filter((o, i) => (offsets[i + 1] ?? bytes.length) <= cut && o < cut).length;
      expect(out.records).toHaveLength(complete);
      expect(out.end.kind).toBe(offsets.includes(cut) || cut === bytes.length ? 'clean' : 'torn');
    }
  });

  it('treats a bad CRC in the last record, or zeros / garbage after it, as a torn tail', () => {
    const { bytes, offsets } = sample();
    const last = offsets.at(-1) as number;
    const flipped = Buffer.from(bytes);
    flipped[last + RECORD_HEADER_BYTES + 3] ^= 0x10;
    expect(decodeRecords(flipped).end).toMatchObject({ kind: 'torn', offset: last, reason: 'CRC mismatch' });

    const zeros = Buffer.concat([bytes, Buffer.alloc(4096)]);
    expect(decodeRecords(zeros).end).toMatchObject({ kind: 'torn', offset: bytes.length });

    const garbage = Buffer.concat([bytes, Buffer.from('\x07\x00\x00\x00garbage that is not a record')]);
    expect(decodeRecords(garbage).end).toMatchObject({ kind: 'torn', offset: bytes.length });
  });

  it('calls damage followed by a complete, sealed batch corruption, with the offset of the damaged record', () => {
    const { bytes, offsets } = sample();
    const sealed = Buffer.concat([sealBatch(bytes), sealBatch(encodeRecords([{ type: 'entry', entry: { term: 2, index: 3, data: Buffer.from('later') } }]))]);
    for (let r = 0; r < offsets.length; r++) {
      const at = offsets[r] as number;
      const end = (offsets[r + 1] as number | undefined) ?? bytes.length;
      for (let byte = at; byte < end; byte++) {
        const damaged = Buffer.from(sealed);
        damaged[byte] ^= 0x04;
        const out = decodeRecords(damaged);
        expect(out.end).toMatchObject({ kind: 'corrupt', offset: at });
        expect(out.records).toHaveLength(r);
      }
    }
  });

  it('calls damage anywhere in the final, unsealed write a torn tail, even with intact records after it', () => {
    // The last write may reach the disk sector by sector in any order before a power cut; it was never
    // acknowledged, so intact records after the damage prove nothing.
    const { bytes, offsets } = sample();
    const sealed = Buffer.concat([sealBatch(encodeRecords([{ type: 'entry', entry: { term: 1, index: 9, data: Buffer.from('earlier') } }])), sealBatch(bytes)]);
    const base = sealed.length - bytes.length - (sealBatch(Buffer.alloc(0)).length);
    for (let r = 0; r < offsets.length; r++) {
      const damaged = Buffer.from(sealed);
      damaged[base + (offsets[r] as number) + 6] ^= 0x04;
      const out = decodeRecords(damaged);
      expect(out.end).toMatchObject({ kind: 'torn', offset: base + (offsets[r] as number) });
      expect(out.records).toHaveLength(2 + r); // the earlier batch and its seal, then the intact prefix
    }
  });

  it('calls a record with a good CRC but an unknown type corruption, even at the end', () => {
    const bytes = Buffer.from(encodeRecords([{ type: 'snapshotMarker', index: 1, term: 1, keep: true }]));
    bytes[4] = 99;
    // Recompute the CRC so only the type is unknown.
    bytes.writeUInt32LE(crc32(bytes.subarray(RECORD_HEADER_BYTES), crc32(Buffer.of(99))), 5);
    expect(decodeRecords(bytes).end).toMatchObject({ kind: 'corrupt', offset: 0 });
    expect((decodeRecords(bytes).end as { reason: string }).reason).toMatch(/unknown record type 99/);
  });

  it('finds corruption in any single flipped bit of a random log, never silently', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { minLength: 2, maxLength: 8 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (records, pos, bit) => {
        const bytes = Buffer.from(encodeRecords(records));
        const byte = pos % bytes.length;
        bytes[byte] ^= 1 << bit;
        const out = decodeRecords(bytes);
        // A flipped bit either stops decoding (torn only when in the last record) or was caught by the CRC.
        expect(out.end.kind).not.toBe('clean');
        const lastStart = bytes.length - encodedSize(records.at(-1) as WalRecord);
        if (out.end.kind === 'torn') expect(byte).toBeGreaterThanOrEqual(Math.min(lastStart, out.end.offset));
      }),
    );
  });
});
