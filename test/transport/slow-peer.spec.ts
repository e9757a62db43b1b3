import * as net from 'node:net';
import { MessageType, message } from '../../lib/raft/index.js';
import { FrameReader } from '../../lib/transport/frame.js';
import { ListenerHandshake } from '../../lib/transport/handshake.js';
import { connected, fullyConnected, testCluster, waitFor, type TestCluster } from './helpers.js';

/**
 * A member that completes the handshake and then never reads again, like a process stopped with SIGSTOP: the
 * kernel buffers fill, then the sender's queue.
 */
async function pausedMember(port: number, id: string, secret: string): Promise<{ server: net.Server; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    const hs = new ListenerHandshake({ nodeId: id, secret, clusterName: '', maxFrameBytes: 16 << 20 }, () => null);
    const reader = new FrameReader(4096);
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let f = reader.next(); f !== null; f = reader.next()) {
        const step = hs.receive(f.kind, f.payload);
        if (step.send !== null) socket.write(step.send);
        if (step.peer !== null) {
          socket.removeAllListeners('data');
          socket.pause();
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, sockets };
}

let cluster: TestCluster | null = null;
let paused: { server: net.Server; sockets: net.Socket[] } | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
  if (paused !== null) {
    for (const s of paused.sockets) s.destroy();
    await new Promise<void>((resolve) => paused!.server.close(() => resolve()));
    paused = null;
  }
});

describe('a peer that stops reading', () => {
  it('does not delay sends to the others; its queue stays under sendQueueBytes; it is dropped when silent', async () => {
    const sendQueueBytes = 1 << 20;
    const c = (cluster = await testCluster(['a', 'b', 'p'], { sendQueueBytes, pingIntervalMs: 100, idleTimeoutMs: 600 }, ['b']));
    paused = await pausedMember(Number(c.members[2]!.split(':').pop()), 'p', 'test-secret-0123456789');
    const a = await c.start('a');
    await fullyConnected(c, ['a', 'b']);
    await waitFor(() => connected(a, 'p'), 'a connected to the paused member');

    const big = { term: 1, index: 1, data: Buffer.alloc(16 * 1024, 1) };
    const t0 = performance.now();
    let maxQueued = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 50; i++) a.sendRaft(message({ type: MessageType.App, from: 'a', to: 'p', term: 1, entries: [big] }));
      for (let i = 0; i < 5; i++) a.sendRaft(message({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 1, commit: round * 5 + i }));
      maxQueued = Math.max(maxQueued, a.stats().peers['p']!.queuedBytes);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => c.handlers.get('b')!.count === 1000, '1000 messages at the healthy peer', 2000);
    const ms = performance.now() - t0;
    const p = a.stats().peers['p']!;
    console.log(`healthy peer got 1000 messages in ${ms.toFixed(0)} ms; paused peer: ${p.dropped} dropped, max queued ${maxQueued} bytes`);
    expect(ms).toBeLessThan(1500);
    expect(p.dropped).toBeGreaterThan(5000);
    expect(maxQueued).toBeLessThanOrEqual(sendQueueBytes + big.data.length + 200);
    expect(c.nets.get('b')!.stats().peers['a']!.dropped).toBe(0);

    // Silent for idleTimeoutMs: dropped (and redialed), while a and b keep each other alive with pings.
    await waitFor(() => c.loggers.get('a')!.logs.some((l) => /disconnected from p: nothing received for/.test(l)), 'idle drop', 3000);
    expect(connected(a, 'b')).toBe(true);
  });
});
