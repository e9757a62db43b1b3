/**
 * Ten learners following three voters, all real processes on 127.0.0.1: learners join by seed with role 'learner',
 * stay learners (never promoted, never leading), forward writes, read linearizably, and deliver every cluster event
 * in the same order as the voters. Needs `npm run build` first.
 */
import type { ReadKeysResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, waitUntil, type NodeProcess } from '../support/process-cluster.js';
import { freePorts } from '../transport/helpers.js';

jest.setTimeout(120_000);

const LEARNERS = 10;
const EVENTS = 40;

let cluster: ProcessCluster;
let ports: number[];

beforeAll(async () => {
  assertBuilt();
  ports = await freePorts(3 + LEARNERS);
  cluster = new ProcessCluster({ ids: ['v1', 'v2', 'v3'], ports });
  await cluster.start();
  await cluster.leader(10_000);
  const seeds = ports.slice(0, 3).map((p) => `127.0.0.1:${p}`);
  await Promise.all(Array.from({ length: LEARNERS }, (_, i) => cluster.join(`l${i + 1}`, ports[3 + i]!, seeds, { CATGA_ROLE: 'learner' })));
});

afterAll(async () => {
  await cluster?.destroy();
});

const learners = (): NodeProcess[] => cluster.nodes.filter((n) => n.id.startsWith('l'));

test('ten learners join by seed and stay learners: the voters are the three, whatever the target', async () => {
  const expected = [...['v1', 'v2', 'v3'].map((id) => `${id}:voter`), ...learners().map((n) => `${n.id}:learner`)].sort().join(',');
  await waitUntil('all thirteen agree on the members', 30_000, async () => {
    const seen = await Promise.all(
      cluster.nodes.map(async (n) =>
        (await n.request<{ id: string; membership: string }[]>({ op: 'members' }))
          .map((m) => `${m.id}:${m.membership}`)
          .sort()
          .join(','),
      ),
    );
    return seen.every((s) => s === expected) ? true : undefined;
  });
});

test('events published on voters and learners reach all thirteen nodes in the same order', async () => {
  for (let i = 0; i < EVENTS; i++) {
    const on = cluster.nodes[i % cluster.nodes.length]!;
    await on.request({ op: 'publishEvent', name: `fan-${i}`, payload: { i } });
  }
  const orders = await waitUntil('every node delivered every event', 30_000, async () => {
    const all = await Promise.all(cluster.nodes.map((n) => n.request<string[]>({ op: 'deliveredEvents' })));
    const ours = all.map((d) => d.filter((e) => /:fan-\d+$/.test(e)));
    return ours.every((d) => d.length === EVENTS) ? ours : undefined;
  });
  for (let i = 1; i < orders.length; i++) expect({ node: cluster.nodes[i]!.id, order: orders[i] }).toEqual({ node: cluster.nodes[i]!.id, order: orders[0] });
});

test('a learner forwards writes and reads them back linearizably; when the leader dies, a voter takes over', async () => {
  const keys: string[] = [];
  for (const l of learners()) {
    await l.request({ op: 'put', key: `by-${l.id}`, value: l.id });
    keys.push(`by-${l.id}`);
  }
  for (const l of learners()) {
    const r = await l.request<ReadKeysResult>({ op: 'readKeys', keys, consistency: 'linearizable' });
    expect(r.missing).toEqual([]);
  }
  const leader = await cluster.leader();
  await leader.signal('SIGKILL');
  cluster.forget(leader);
  const next = await cluster.leader(10_000);
  expect(next.id).toMatch(/^v/);
  await learners()[0]!.request({ op: 'put', key: 'after-failover', value: 1 });
});
