import { MessageType, message } from '../../lib/raft/index.js';
import { decodeMessage, encodeMessage } from '../../lib/transport/raft-codec.js';
import { fullyConnected, testCluster, waitFor, type TestCluster } from './helpers.js';

/**
 * Sanity numbers, printed rather than asserted: timings on shared CI machines are not a test. Jest's module sandbox
 * makes Buffer-heavy code several times slower than plain node, so these understate production throughput.
 */
let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

const N = 100_000;
const small = (i: number) =>
  message({ type: MessageType.App, from: 'a', to: 'b', term: 5, index: i, logTerm: 5, commit: i, entries: [{ term: 5, index: i + 1, data: Buffer.alloc(32, 1) }] });

describe('throughput (printed, not asserted)', () => {
  it('codec: encode and decode small messages', () => {
    const m = small(1);
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < N; i++) bytes += decodeMessage(encodeMessage(m)).entries.length;
    const s = (performance.now() - t0) / 1000;
    console.log(`codec round trip: ${Math.round(N / s).toLocaleString('en')} msgs/s (${encodeMessage(m).length} bytes each)`);
    expect(bytes).toBe(N);
  });

  it('100k small raft messages over loopback', async () => {
    const c = (cluster = await testCluster(['a', 'b']));
    await fullyConnected(c);
    const b = c.handlers.get('b')!;
    b.keep = false;
    const a = c.nets.get('a')!;
    const t0 = performance.now();
    for (let sent = 0; sent < N; ) {
      for (let k = 0; k < 1000; k++, sent++) a.sendRaft(small(sent + 1));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => b.count === N, `${N} messages`, 20_000);
    const s = (performance.now() - t0) / 1000;
    console.log(`loopback: ${Math.round(N / s).toLocaleString('en')} msgs/s (${N} messages in ${(s * 1000).toFixed(0)} ms)`);
    expect(a.stats().peers['b']!.dropped).toBe(0);
  });
});
