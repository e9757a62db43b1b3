import fc from 'fast-check';
import { MessageType, message, type Message } from '../../lib/raft/index.js';
import { FrameError } from '../../lib/transport/errors.js';
import { decodeMessage, encodeMessage, messageSize } from '../../lib/transport/raft-codec.js';

const u64 = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const id = fc.string({ unit: 'binary', maxLength: 20 });
const bytes = fc.uint8Array({ maxLength: 200 });

const messageArb: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: MessageType.PreVote, max: MessageType.TimeoutNow }) as fc.Arbitrary<MessageType>,
  from: id,
  to: id,
  term: u64,
  logTerm: u64,
  index: u64,
  commit: u64,
  entries: fc.array(fc.record({ term: u64, index: u64, data: bytes }), { maxLength: 8 }),
  reject: fc.boolean(),
  rejectHint: u64,
  context: fc.string({ unit: 'grapheme', maxLength: 30 }),
  stamp: u64,
  fence: u64,
  snapshot: fc.option(
    fc.record({
      meta: fc.record({
        index: u64,
        term: u64,
        membership: fc.record({
          members: fc.uniqueArray(
            fc.record({ id: id.filter((x) => x !== ''), address: fc.string({ maxLength: 20 }), role: fc.constantFrom('voter' as const, 'learner' as const) }),
            { maxLength: 7, selector: (m) => m.id },
          ),
        }),
      }),
      offset: u64,
      total: u64,
      data: bytes,
    }),
    { nil: null },
  ),
});

/** Uint8Array contents as arrays, so Buffer vs Uint8Array does not matter to toEqual. */
function plain(m: Message): unknown {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: [...e.data] })),
    snapshot: m.snapshot === null ? null : { ...m.snapshot, data: [...m.snapshot.data] },
  };
}

function expectOnlyFrameError(bytes: Uint8Array): void {
  try {
    decodeMessage(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(FrameError);
  }
}

describe('raft codec', () => {
  it('round-trips every field, entries and snapshot chunks included', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const buf = encodeMessage(m);
        expect(buf.length).toBe(messageSize(m));
        expect(plain(decodeMessage(buf))).toEqual(plain(m));
      }),
      { numRuns: 500 },
    );
  });

  it('decodes copies of entry data, not views into the input', () => {
    const m = message({ type: MessageType.App, from: 'a', to: 'b', term: 1, entries: [{ term: 1, index: 1, data: Buffer.from('xy') }] });
    const buf = encodeMessage(m);
    const out = decodeMessage(buf);
    buf.fill(0);
    expect(Buffer.from(out.entries[0]!.data).toString()).toBe('xy');
  });

  it('refuses values the layout cannot hold', () => {
    expect(() => encodeMessage(message({ type: MessageType.App, from: 'a', to: 'b', term: -1 }))).toThrow(RangeError);
    expect(() => encodeMessage(message({ type: MessageType.App, from: 'a', to: 'b', term: 1.5 }))).toThrow(RangeError);
    expect(() => encodeMessage(message({ type: MessageType.App, from: 'x'.repeat(70000), to: 'b', term: 1 }))).toThrow(RangeError);
  });

  it('throws only FrameError on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => expectOnlyFrameError(b)), { numRuns: 2000 });
  });

  it('throws only FrameError on mutated, truncated or extended valid messages', () => {
    const mutation = fc.record({
      flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
      cut: fc.nat(),
      extra: fc.uint8Array({ maxLength: 8 }),
      mode: fc.constantFrom('flip', 'truncate', 'extend'),
    });
    fc.assert(
      fc.property(messageArb, mutation, (m, mu) => {
        const buf = Buffer.from(encodeMessage(m));
        if (mu.mode === 'flip') {
          for (const f of mu.flips) buf[f.at % buf.length] = f.value;
          expectOnlyFrameError(buf);
        } else if (mu.mode === 'truncate') {
          expect(() => decodeMessage(buf.subarray(0, mu.cut % buf.length))).toThrow(FrameError);
        } else if (mu.extra.length > 0) {
          expect(() => decodeMessage(Buffer.concat([buf, mu.extra]))).toThrow(FrameError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('checks counts against the remaining bytes before allocating', () => {
    const m = message({ type: MessageType.App, from: 'a', to: 'b', term: 1 });
    const buf = Buffer.from(encodeMessage(m));
    // The entry count is the last u32 of an App without entries and snapshot.
    buf.writeUInt32LE(0xffffffff, buf.length - 4);
    expect(() => decodeMessage(buf)).toThrow(/4294967295 entries needs/);
    const bigTerm = Buffer.from(encodeMessage(m));
    bigTerm.writeUInt32LE(0xffffffff, 2 + 2 + 1 + 2 + 1 + 4); // high word of term
    expect(() => decodeMessage(bigTerm)).toThrow(/exceeds 2\^53/);
  });

  it('rejects unknown message types and flags', () => {
    const buf = Buffer.from(encodeMessage(message({ type: MessageType.Vote, from: 'a', to: 'b', term: 1 })));
    buf[0] = 99;
    expect(() => decodeMessage(buf)).toThrow(/unknown type 99/);
    buf[0] = MessageType.Vote;
    buf[1] = 0x80;
    expect(() => decodeMessage(buf)).toThrow(/unknown flags/);
  });
});
