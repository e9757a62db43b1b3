/**
 * Three real node processes on 127.0.0.1 (ports 18100–18102): election, writes from every node, linearizable reads
 * on every node. Needs `npm run build` first (the nodes run dist/test/e2e/node-main.js).
 */
import type { StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import { ProcessCluster, assertBuilt, waitUntil } from '../support/process-cluster.js';

jest.setTimeout(30_000);

let cluster: ProcessCluster;

beforeAll(async () => {
  assertBuilt();
  cluster = new ProcessCluster({ basePort: 18100 });
  await cluster.start();
});

afterAll(async () => {
  await cluster?.destroy();
});

test('a leader is elected and every node agrees on it and its term', async () => {
  const started = Date.now();
  const leader = await cluster.leader(5000);
  const agreed = await waitUntil('all nodes naming one leader', 3000, async () => {
    const all = await Promise.all(cluster.nodes.map((n) => n.status()));
    const same = all.every((s) => s.leaderId === leader.id && s.term === all[0]!.term);
    return same ? all : undefined;
  });
  const elapsed = Date.now() - started;
  expect(agreed.filter((s) => s.isLeader).map((s) => s.nodeId)).toEqual([leader.id]);
  expect(agreed.find((s) => s.isLeader)!.leaseValid).toBe(true);
  console.log(`e2e cluster: leader ${leader.id} in term ${agreed[0]!.term}, agreed by all ${elapsed} ms after the processes were up`);
});

test('a write from every node returns a version, and a linearizable read on every node sees every write', async () => {
  // One key per node, written on that node (followers forward to the leader).
  for (const n of cluster.nodes) {
    const r = await n.request<WriteResult>({ op: 'put', key: `from-${n.id}`, value: { by: n.id } });
    expect(r.version).toBe(1);
    expect(r.revision).toBeGreaterThan(0);
  }
  // One shared key written by every node in turn: versions 1, 2, 3 in that order.
  const versions: number[] = [];
  for (const n of cluster.nodes) versions.push((await n.request<WriteResult>({ op: 'put', key: 'shared', value: n.id })).version);
  expect(versions).toEqual([1, 2, 3]);

  for (const reader of cluster.nodes) {
    for (const writer of cluster.nodes) {
      const e = await reader.request<StoreEntry | null>({ op: 'get', key: `from-${writer.id}`, consistency: 'linearizable' });
      expect(e).toMatchObject({ value: { by: writer.id }, version: 1 });
    }
    const shared = await reader.request<StoreEntry | null>({ op: 'get', key: 'shared', consistency: 'linearizable' });
    expect(shared).toMatchObject({ value: cluster.nodes[cluster.nodes.length - 1]!.id, version: 3 });
  }
});

test('cas and delete from a follower go through the leader', async () => {
  const leader = await cluster.leader();
  const follower = cluster.nodes.find((n) => n !== leader)!;
  const first = await follower.request<{ ok: boolean; version: number }>({ op: 'cas', key: 'cas-key', expectedVersion: 0, value: 'a' });
  expect(first).toMatchObject({ ok: true, version: 1 });
  const stale = await follower.request<{ ok: boolean; version: number }>({ op: 'cas', key: 'cas-key', expectedVersion: 0, value: 'b' });
  expect(stale).toMatchObject({ ok: false, version: 1 });
  await follower.request({ op: 'delete', key: 'cas-key' });
  expect(await leader.request({ op: 'get', key: 'cas-key', consistency: 'linearizable' })).toBeNull();
});
