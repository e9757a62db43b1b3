/**
 * Real node processes (ports 18400–18402) facing a member with the wrong secret and garbage on the cluster port:
 * the rest keeps electing and writing, nothing crashes. Needs `npm run build` first.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import type { StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import type { WriteLoadResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, waitUntil } from '../support/process-cluster.js';

jest.setTimeout(30_000);

const BASE_PORT = 18400;
let cluster: ProcessCluster;

beforeAll(async () => {
  assertBuilt();
  // n3 is configured with another secret than n1 and n2.
  cluster = new ProcessCluster({ basePort: BASE_PORT, nodeEnv: { n3: { CATGA_SECRET: 'not-the-cluster-secret' } } });
  await cluster.start();
});

afterAll(async () => {
  await cluster?.destroy();
});

test('a member with the wrong secret is refused: the other two elect a leader and take writes, it never leads or sees data', async () => {
  const [n1, n2, n3] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const seen: RuntimeStatus[] = [];
  const watch = setInterval(() => void n3.status().then((s) => seen.push(s), () => undefined), 20);
  try {
    // A put on n3 can only fail: no leader ever reaches it (it retries until its request timeout, 5 s).
    const onOutsider = n3.request<WriteResult>({ op: 'put', key: 'from-outsider', value: 1 }).then(
      () => 'acknowledged',
      (e: Error) => e.name,
    );
    const leader = await cluster.leader(5000, [n1, n2]);
    for (const n of [n1, n2]) expect((await n.request<WriteResult>({ op: 'put', key: `from-${n.id}`, value: n.id })).version).toBe(1);
    for (const n of [n1, n2]) {
      const e = await n.request<StoreEntry | null>({ op: 'get', key: 'from-n1', consistency: 'linearizable' });
      expect(e?.value).toBe('n1');
    }
    expect(await onOutsider).toBe('NoLeaderException');
    const s3 = await n3.status();
    expect(s3).toMatchObject({ isLeader: false, leaderId: '', appliedIndex: 0, commitIndex: 0 });
    expect(await n3.request({ op: 'get', key: 'from-n1', consistency: 'local' })).toBeNull();
    expect(await n1.request({ op: 'get', key: 'from-outsider', consistency: 'linearizable' })).toBeNull();
    // Both sides say why in their logs.
    await waitUntil('n1 and n2 logging the failed authentication', 3000, async () =>
      n1.output.includes('n3 failed authentication') || n2.output.includes('n3 failed authentication') ? true : undefined,
    );
    console.log(`e2e wrong secret: leader ${leader.id}; ${seen.length} status samples of n3, none leading; its put ended with ${await onOutsider}`);
  } finally {
    clearInterval(watch);
  }
  expect(seen.length).toBeGreaterThan(50);
  expect(seen.filter((s) => s.isLeader || s.leaderId !== '' || s.appliedIndex > 0)).toEqual([]);
});

interface RawOutcome {
  readonly name: string;
  /** The node closed the connection (null: still open when we gave up waiting). */
  readonly closedAfterMs: number | null;
  readonly bytesBack: number;
}

/** Connects to `port`, sends `bytes` (in one write), and waits up to `waitMs` for the node to close the connection. */
function sendRaw(name: string, port: number, bytes: Buffer, waitMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let bytesBack = 0;
    const t0 = Date.now();
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ name, closedAfterMs: closed ? Date.now() - t0 : null, bytesBack });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => (bytesBack += d.length));
    sock.on('error', () => finish(true)); // reset by the node
    sock.on('close', () => finish(true));
  });
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

test('garbage on the cluster port (random bytes, HTTP, huge and zero length prefixes) crashes nothing', async () => {
  const leader = await cluster.leader(5000, cluster.nodes.slice(0, 2));
  const follower = cluster.nodes.slice(0, 2).find((n) => n !== leader)!;
  const termBefore = (await leader.status()).term;
  const targets = [leader, follower];
  const portOf = (id: string): number => BASE_PORT + cluster.nodes.findIndex((n) => n.id === id);

  // Writes keep flowing on the leader and through the follower while the garbage arrives.
  const loads = targets.map((n) => n.request<WriteLoadResult>({ op: 'writeLoad', writers: 2, durationMs: 3000, keyPrefix: `during-garbage-${n.id}-` }));
  const cases: [string, Buffer][] = [
    ['random 64 KiB', randomBytes(64 * 1024)],
    ['random 7 bytes', randomBytes(7)],
    ['HTTP request', Buffer.from('GET /cluster/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n')],
    ['huge length prefix', Buffer.concat([u32(0xfffffff0), Buffer.from([1]), randomBytes(64)])],
    ['length just over the pre-auth limit', Buffer.concat([u32(4097), Buffer.from([1]), randomBytes(4096)])],
    ['zero length prefix', Buffer.concat([u32(0), randomBytes(16)])],
    ['unknown frame kind', Buffer.concat([u32(5), Buffer.from([200]), randomBytes(4)])],
    ['RAFT frame before the handshake', Buffer.concat([u32(9), Buffer.from([6]), randomBytes(8)])],
    ['malformed HELLO', Buffer.concat([u32(40), Buffer.from([1]), randomBytes(39)])],
  ];
  // On both nodes at once: twenty connections of random garbage (1 byte to 9 KiB) and each crafted case. Bytes that
  // do not complete a length prefix are dropped at the handshake deadline (5 s); the rest at once.
  const outcomes = (
    await Promise.all(
      targets.map((n) => {
        const port = portOf(n.id);
        return Promise.all([
          ...Array.from({ length: 20 }, (_, i) => sendRaw(`${n.id}: random ${1 + ((i * 997) % 9000)} bytes`, port, randomBytes(1 + ((i * 997) % 9000)), 6500)),
          ...cases.map(([name, bytes]) => sendRaw(`${n.id}: ${name}`, port, bytes, 6500)),
        ]);
      }),
    )
  ).flat();
  const results = await Promise.all(loads);

  // Every garbage connection was dropped by the node (the handshake deadline is 5 s at worst).
  expect(outcomes.filter((o) => o.closedAfterMs === null).map((o) => o.name)).toEqual([]);
  for (const n of cluster.nodes) expect(n.running).toBe(true);
  for (const r of results) {
    expect(r.errors).toBe(0);
    expect(r.acked.length).toBeGreaterThan(50);
    expect(r.maxGapMs).toBeLessThan(1000);
  }
  // Still serving: a write through each target and a linearizable read of it.
  for (const n of targets) {
    const w = await n.request<WriteResult>({ op: 'put', key: `after-garbage-${n.id}`, value: n.id });
    expect(w.version).toBe(1);
    expect(await n.request<StoreEntry | null>({ op: 'get', key: `after-garbage-${n.id}`, consistency: 'linearizable' })).toMatchObject({ value: n.id });
  }
  const termAfter = (await leader.status()).term;
  const slow = outcomes.filter((o) => (o.closedAfterMs ?? 0) > 1000).map((o) => `${o.name} after ${o.closedAfterMs} ms`);
  console.log(
    `e2e garbage: ${outcomes.length} connections, all dropped (after > 1 s: ${slow.join(', ') || 'none'}; bytes back on: ${outcomes.filter((o) => o.bytesBack > 0).map((o) => `${o.name} (${o.bytesBack})`).join(", ") || "none"}); ` +
      `writes during it: ${results.map((r) => `${r.acked.length} acked, longest pause ${Math.round(r.maxGapMs)} ms`).join('; ')}; term ${termBefore} -> ${termAfter}`,
  );
});
