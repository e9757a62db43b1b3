/**
 * kill -9 on real node processes (ports 18200–18202, compaction every 50 entries): the leader dies under write load,
 * a survivor commits within a second, no acknowledged write is lost, and the killed node comes back on its dataDir
 * and catches up by snapshot. Needs `npm run build` first.
 */
import * as net from 'node:net';
import type { StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import { epochMs, type ReadKeysResult, type WriteLoadResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, sleep, waitUntil, type NodeProcess } from '../support/process-cluster.js';

jest.setTimeout(30_000);

let cluster: ProcessCluster;
/** Set by the first test, restarted by the second. */
let killed: NodeProcess | null = null;
/** Every key acknowledged anywhere so far. */
const acked: string[] = [];

beforeAll(async () => {
  assertBuilt();
  cluster = new ProcessCluster({ basePort: 18200, env: { CATGA_COMPACTION: '50' } });
  await cluster.start();
});

afterAll(async () => {
  await cluster?.destroy();
});

async function missingOn(node: NodeProcess, keys: readonly string[], consistency: 'local' | 'linearizable'): Promise<string[]> {
  return (await node.request<ReadKeysResult>({ op: 'readKeys', keys, consistency }, 20_000)).missing;
}

test('kill -9 of the leader under write load: a survivor commits within 1 s and no acknowledged write is lost', async () => {
  const leader = await cluster.leader(5000);
  const survivors = cluster.nodes.filter((n) => n !== leader);
  // Writers in both survivors' processes, 4 each, going through the leader until it dies.
  const loads = survivors.map((s) =>
    s.request<WriteLoadResult>({ op: 'writeLoad', writers: 4, durationMs: 2500, keyPrefix: `load-${s.id}-`, detail: true }, 20_000),
  );
  await sleep(800);
  const before = await leader.status();

  const killAt = epochMs();
  await leader.signal('SIGKILL');
  const goneAt = epochMs();
  killed = leader;
  // Sent once the process is gone, so no answer can come from it: the first write to commit on a survivor.
  const first = await Promise.any(
    survivors.map(async (s) => {
      const r = await s.request<WriteResult>({ op: 'put', key: `after-kill-${s.id}`, value: s.id }, 10_000);
      acked.push(`after-kill-${s.id}`);
      return { node: s.id, at: epochMs(), r };
    }),
  );
  const failoverMs = first.at - killAt;

  const results = await Promise.all(loads);
  for (const r of results) acked.push(...r.acked);
  // Also from the load: the first write that started after the process was gone and was acknowledged.
  const loadFirst = Math.min(
    ...results.flatMap((r) => (r.startAt ?? []).map((st, i) => (st >= goneAt ? r.endAt![i]! - killAt : Number.POSITIVE_INFINITY))),
  );
  await Promise.allSettled(survivors.map((s) => s.request({ op: 'put', key: `after-kill-${s.id}`, value: s.id })));
  for (const s of survivors) if (!acked.includes(`after-kill-${s.id}`)) acked.push(`after-kill-${s.id}`);

  const next = await cluster.leader(3000, survivors);
  const missing = await Promise.all(survivors.map((s) => missingOn(s, acked, 'linearizable')));
  const report = {
    killed: leader.id,
    indexAtKill: before.commitIndex,
    newLeader: next.id,
    failoverMs: Math.round(failoverMs),
    failoverFromLoadMs: Number.isFinite(loadFirst) ? Math.round(loadFirst) : null,
    firstCommitOn: first.node,
    ackedWrites: acked.length,
    loadErrors: results.map((r) => r.errorNames),
    maxWriterPauseMs: Math.round(Math.max(...results.map((r) => r.maxGapMs))),
    missing: missing.map((m) => m.length),
  };
  console.log(`e2e failover: ${JSON.stringify(report)}`);
  expect(failoverMs).toBeLessThan(1000);
  expect(results.every((r) => r.acked.length > 0)).toBe(true);
  expect(missing).toEqual([[], []]);
});

test('the killed node restarts on its dataDir and catches up by snapshot, then serves the latest values locally', async () => {
  expect(killed).not.toBeNull();
  const node = killed!;
  const survivors = cluster.nodes.filter((n) => n !== node);
  const leader = await cluster.leader(3000, survivors);

  // A few hundred more writes while it is down, so the leader's log starts well past anything the node has.
  const more = await leader.request<WriteLoadResult>({ op: 'writeLoad', writers: 8, durationMs: 5000, maxWrites: 300, keyPrefix: 'while-down-' });
  expect(more.acked.length).toBeGreaterThanOrEqual(300);
  acked.push(...more.acked);
  // Overwrite one key, so "latest value" differs from an older one the node may hold.
  for (let v = 0; v < 3; v++) await leader.request({ op: 'put', key: 'after-kill-' + survivors[0]!.id, value: `latest-${v}` });
  const atRestart = await leader.status();

  await node.start();
  const boot = await node.request<RuntimeStatus>({ op: 'bootStatus' });
  // What the node recovered lies before the leader's snapshot: entries alone cannot bring it up to date.
  expect(boot.lastIndex).toBeLessThan(atRestart.snapshotIndex);

  const started = Date.now();
  const caughtUp = await waitUntil('the restarted node applying everything the leader applied', 10_000, async () => {
    const [l, n] = await Promise.all([leader.status(), node.status()]);
    return n.appliedIndex >= l.appliedIndex && n.leaderId === leader.id ? { l, n } : undefined;
  });
  const catchUpMs = Date.now() - started;
  console.log(
    `e2e restart: recovered lastIndex ${boot.lastIndex} snapshotIndex ${boot.snapshotIndex}; leader snapshotIndex ${atRestart.snapshotIndex} ` +
      `appliedIndex ${caughtUp.l.appliedIndex}; node caught up in ${catchUpMs} ms to appliedIndex ${caughtUp.n.appliedIndex} snapshotIndex ${caughtUp.n.snapshotIndex}`,
  );
  expect(caughtUp.n.appliedIndex).toBe(caughtUp.l.appliedIndex);
  expect(caughtUp.n.snapshotIndex).toBeGreaterThanOrEqual(atRestart.snapshotIndex);
  expect(caughtUp.n.isLeader).toBe(false);

  // Local reads on the restarted node: every acknowledged key, and the latest value of the overwritten one.
  expect(await missingOn(node, acked, 'local')).toEqual([]);
  const latest = await node.request<StoreEntry | null>({ op: 'get', key: 'after-kill-' + survivors[0]!.id, consistency: 'local' });
  expect(latest?.value).toBe('latest-2');
  const fromLeader = await leader.request<StoreEntry | null>({ op: 'get', key: 'after-kill-' + survivors[0]!.id, consistency: 'linearizable' });
  expect(latest).toEqual(fromLeader);
});

test('the restarted node takes writes and leads again after a transfer', async () => {
  const node = killed!;
  const r = await node.request<WriteResult>({ op: 'put', key: 'from-restarted', value: 1 });
  expect(r.version).toBe(1);
  await node.request({ op: 'transfer', to: node.id });
  await waitUntil('the restarted node leading', 3000, async () => {
    const s = await node.status();
    return s.isLeader && s.leaseValid ? true : undefined;
  });
  expect(await missingOn(node, [...acked, 'from-restarted'], 'linearizable')).toEqual([]);
});

/** The dialer id in a HELLO frame (u32 length, u8 kind 1, u16 version, u8 auth mode, str16 dialerId), or null. */
function helloDialer(buf: Buffer): string | null {
  if (buf.length < 10 || buf[4] !== 1) return null;
  const len = buf.readUInt16LE(8);
  return buf.length < 10 + len ? null : buf.subarray(10, 10 + len).toString('utf8');
}

// Regression: only the member with the smaller id dials a pair's connection, and its redial delay used to grow to
// 2 s (±20%) while the peer was down, so after a member restarted the others could stay disconnected from it for up
// to ~2.4 s; if the leader died in that window the survivors could not exchange a vote (1491 ms without a leader
// measured in a reproduction). The redial delay is now capped at 250 ms.
test('kill -9 of the leader while another member restarts: a survivor commits within 1 s', async () => {
  const leader = await cluster.leader(5000);
  const [x, v] = cluster.nodes.filter((n) => n !== leader).sort((a, b) => (a.id < b.id ? -1 : 1)) as [NodeProcess, NodeProcess];
  // x has the smaller id: x dials v, v never dials x.
  await v.signal('SIGKILL');
  const port = Number(cluster.members.find((m) => m.startsWith(`${v.id}=`))!.split(':').pop());
  // Stand in for v on its port, only to see when x dials (each dial is a connection whose HELLO names x); every
  // connection is dropped before the handshake, which is what a dead port does to x's backoff too.
  const dials: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const who = helloDialer(buf);
      if (who !== null) {
        if (who === x.id) dials.push(Date.now());
        sock.destroy();
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  let lastDial: number;
  try {
    // Six failed dials (after 50, 100, 200, 400, 800, 1600 ms, ±20%): x's next delay is at its cap, 2 s ±20%.
    await waitUntil('x dialing v six times', 15_000, async () => (dials.length >= 6 ? true : undefined), 2);
    lastDial = dials[dials.length - 1]!;
  } finally {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const sock of sockets) sock.destroy();
    await closed;
  }
  // The leader dies right then, and v comes back on its dataDir (~0.4 s here): from then on a quorum is running.
  const killAt = epochMs();
  const sinceDial = Date.now() - lastDial;
  await leader.signal('SIGKILL');
  await v.start();
  const backAfter = epochMs() - killAt;
  const first = await Promise.any(
    [x, v].map(async (s) => {
      await s.request<WriteResult>({ op: 'put', key: `after-restart-kill-${s.id}`, value: 1 }, 10_000);
      return epochMs() - killAt;
    }),
  );
  console.log(
    `e2e kill during a restart: leader ${leader.id} killed ${sinceDial} ms after ${x.id}'s last dial to ${v.id}; ${v.id} back ` +
      `${Math.round(backAfter)} ms after the kill; first write on a survivor ${Math.round(first)} ms after the kill`,
  );
  expect(first).toBeLessThan(1000);
});
