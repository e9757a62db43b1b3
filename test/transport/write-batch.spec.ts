import fc from 'fast-check';
import { WriteBatch } from '../../lib/transport/write-batch.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('WriteBatch', () => {
  it('hands the frames of one tick to the socket in one write', async () => {
    const chunks: Buffer[] = [];
    const b = new WriteBatch((c) => chunks.push(Buffer.from(c)));
    for (let i = 0; i < 100; i++) b.write(Buffer.from([i]));
    expect(b.pendingBytes).toBe(100);
    expect(chunks).toHaveLength(0);
    await tick();
    expect(chunks.length).toBeLessThanOrEqual(2); // the first slab is small until it learns the rate
    expect([...Buffer.concat(chunks)]).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(b.pendingBytes).toBe(0);
  });

  it('keeps order across reserved, copied and direct (large) frames and ticks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ kind: fc.constantFrom('reserve', 'write'), size: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 16_000, max: 70_000 })), tickAfter: fc.boolean() }), { maxLength: 30 }),
        async (ops) => {
          const chunks: Buffer[] = [];
          const b = new WriteBatch((c) => chunks.push(Buffer.from(c)));
          const expected: Buffer[] = [];
          ops.forEach((op, i) => {
            const frame = Buffer.alloc(op.size, i % 251);
            expected.push(frame);
            if (op.kind === 'write') b.write(frame);
            else {
              const at = b.reserve(op.size); // before reading b.buffer, which reserve may replace
              frame.copy(b.buffer, at);
            }
          });
          for (const op of ops) if (op.tickAfter) await tick();
          await tick();
          expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('sends nothing after close, and flush() hands over at once', () => {
    const chunks: Buffer[] = [];
    const b = new WriteBatch((c) => chunks.push(c));
    b.write(Buffer.from('abc'));
    b.flush();
    expect(chunks.map(String)).toEqual(['abc']);
    b.write(Buffer.from('lost'));
    b.close();
    b.write(Buffer.alloc(20_000));
    b.flush();
    expect(chunks).toHaveLength(1);
  });
});
