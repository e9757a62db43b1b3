/** Cluster events on a real etcd: one order for every node, idempotent publishes, retention gaps, compaction. */
import type { Etcd3, KVClient } from 'etcd3';
import { EtcdEvents } from '../../lib/cluster/etcd/etcd-events';
import type { EtcdKeys } from '../../lib/cluster/etcd/keys';
import { EventDelivery, type EventGap } from '../../lib/cluster/event-delivery';
import type { ClusterLogger } from '../../lib/cluster/logger';
import { MemoryCursor } from '../../lib/cluster/memory-cursor';
import type { CommittedEvent } from '../../lib/cluster/state/event-log-module';
import { systemTimers } from '../../lib/io/clock';
import { etcdHosts, freshKeys, noRetryClient, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { waitUntil } from '../support/process-cluster';

jest.setTimeout(120_000);

let etcd: EtcdCluster;
const clients: Etcd3[] = [];
const running: EtcdEvents[] = [];

beforeAll(async () => {
  etcd = await startEtcd(3);
}, 120_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await etcd?.destroy();
});

function client(): Etcd3 {
  const c = noRetryClient(etcdHosts(etcd));
  clients.push(c);
  return c;
}

function recorder(): ClusterLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, log() {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(m) };
}

function events(
  keys: EtcdKeys,
  clientId: string,
  o: { client?: Etcd3; retention?: number; isLeader?: () => boolean; logger?: ClusterLogger } = {},
): EtcdEvents {
  const e = new EtcdEvents({
    client: o.client ?? client(),
    keys,
    clientId,
    retention: o.retention ?? 10_000,
    requestTimeoutMs: 5_000,
    timers: systemTimers,
    logger: o.logger ?? recorder(),
    isLeader: o.isLeader ?? (() => false),
  });
  running.push(e);
  return e;
}


/** Waits until `e` buffers `n` events and returns them. */
function buffered(e: EtcdEvents, n: number, after = 0): Promise<CommittedEvent[]> {
  return waitUntil(`${n} events buffered`, 30_000, async () => {
    const got = e.source.after(after);
    return got.length >= n ? got : undefined;
  });
}

async function countKeys(c: Etcd3, prefix: string): Promise<number> {
  return c.getAll().prefix(prefix).count();
}

test('three publishers: every node buffers the same events in the same, strictly increasing index order', async () => {
  const keys = freshKeys();
  const nodes = ['a', 'b', 'c'].map((id) => events(keys, id));
  await Promise.all(nodes.map((n) => n.start(0)));
  const published = await Promise.all(
    nodes.flatMap((n, i) => Array.from({ length: 15 }, (_, j) => n.publish('Tick', { from: i, j }).then((r) => ({ ...r, from: i, j })))),
  );
  const seen = await Promise.all(nodes.map((n) => buffered(n, published.length)));
  for (const list of seen) {
    expect(list).toEqual(seen[0]);
    expect(list).toHaveLength(45);
    for (let i = 1; i < list.length; i++) expect(list[i]!.index).toBeGreaterThan(list[i - 1]!.index);
  }
  const byIndex = new Map(seen[0]!.map((e) => [e.index, e]));
  for (const p of published) expect(byIndex.get(p.index)).toEqual({ name: 'Tick', payload: { from: p.from, j: p.j }, index: p.index });
  for (const n of nodes) expect(n.revision).toBeGreaterThanOrEqual(Math.max(...published.map((p) => p.index)));
});

test('a publish retried after a lost answer returns the first attempt\'s index and leaves one key', async () => {
  const keys = freshKeys();
  const c = client();
  const kv: KVClient = c.kv;
  const real = kv.txn.bind(kv);
  let lost = 0;
  // The first transaction reaches etcd and commits; its answer is lost on the way back.
  kv.txn = async (...args: Parameters<KVClient['txn']>) => {
    const res = await real(...args);
    if (lost++ === 0) throw new Error('simulated: connection reset after the request was sent');
    return res;
  };
  const publisher = events(keys, 'r', { client: c });
  const watcher = events(keys, 'w');
  await watcher.start(0);
  const { index } = await publisher.publish('Once', { n: 1 });
  expect(lost).toBe(2);
  expect(await countKeys(c, keys.eventsPrefix)).toBe(1);
  const [only] = await buffered(watcher, 1);
  expect(only).toEqual({ name: 'Once', payload: { n: 1 }, index });
  const key = (await c.getAll().prefix(keys.eventsPrefix).keys())[0];
  expect(key).toBe(keys.event('r', 1));
});

test('a start from a delivery cursor skips the events delivered before it and follows new ones', async () => {
  const keys = freshKeys();
  const a = events(keys, 'a');
  const indexes: number[] = [];
  for (let i = 0; i < 10; i++) indexes.push((await a.publish('E', i)).index);
  const late = events(keys, 'late');
  await late.start(indexes[3]!);
  expect(late.source.after(0).map((e) => e.payload)).toEqual([4, 5, 6, 7, 8, 9]);
  const next = await a.publish('E', 10);
  const all = await buffered(late, 7);
  expect(all[6]).toEqual({ name: 'E', payload: 10, index: next.index });
  expect(late.source.evictedUpTo).toBe(0);
  late.forget(indexes[7]!);
  expect(late.source.after(0).map((e) => e.payload)).toEqual([8, 9, 10]);
});

test('retention: the leader keeps 5 events; a late starter with cursor 0 sees one gap, then only the kept events', async () => {
  const keys = freshKeys();
  const c = client();
  const leader = events(keys, 'lead', { client: c, retention: 5, isLeader: () => true });
  const follower = events(keys, 'f', { retention: 5 });
  await leader.start(0);
  await follower.start(0);
  const published: number[] = [];
  for (let i = 0; i < 20; i++) published.push((await leader.publish('E', i)).index);
  await waitUntil('trimmed to 5 events', 30_000, async () => ((await countKeys(c, keys.eventsPrefix)) <= 5 ? true : undefined), 100);
  const marker = Number(await c.get(keys.eventsEvicted).string());
  expect(marker).toBe(published[14]);
  // Someone who was watching all along sees the marker too (in order with the events).
  await waitUntil('the follower saw the marker', 10_000, async () => (follower.source.evictedUpTo === marker ? true : undefined));

  const late = events(keys, 'late', { retention: 5 });
  await late.start(0);
  expect(late.source.evictedUpTo).toBe(marker);
  expect(late.source.after(0).map((e) => e.index)).toEqual(published.slice(15));

  // EventDelivery turns it into one gap, then the kept events, in order.
  const missed: EventGap[] = [];
  const delivered: number[] = [];
  const delivery = new EventDelivery(late.source, new MemoryCursor(), systemTimers, recorder());
  await delivery.load();
  delivery.start({ deliver: (e) => void delivered.push(e.index), missed: (g) => void missed.push(g) });
  expect(missed).toEqual([{ after: 0, upTo: marker }]);
  expect(delivered).toEqual(published.slice(15));
  delivery.close();
});

test('compaction: a watcher resumed past compacted history warns, reads the kept events again and misses none', async () => {
  const keys = freshKeys();
  const c = client();
  const logger = recorder();
  const pub = events(keys, 'p');
  const w = events(keys, 'w', { logger });
  await w.start(0);
  const first: number[] = [];
  for (let i = 0; i < 3; i++) first.push((await pub.publish('E', i)).index);
  await buffered(w, 3);
  const stoppedAt = w.revision;
  await w.stop();
  const later: number[] = [];
  for (let i = 3; i < 8; i++) later.push((await pub.publish('E', i)).index);
  // Some churn elsewhere, so the compaction moves well past where the watcher stopped.
  for (let i = 0; i < 5; i++) await c.put(`${keys.prefix}other`).value(String(i));
  const head = revisionOfHeader(await c.get(`${keys.prefix}other`).exec());
  await c.kv.compact({ revision: String(head), physical: true });

  await w.start(0);
  const all = await buffered(w, 8);
  expect(all.map((e) => e.index)).toEqual([...first, ...later]);
  expect(all.map((e) => e.payload)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  await waitUntil('the compaction warning', 10_000, async () => (logger.warnings.some((m) => m.includes('compacted its history past')) ? true : undefined));
  expect(logger.warnings.find((m) => m.includes('compacted'))).toBe(`etcd compacted its history past ${stoppedAt}; re-reading kept events`);
  // And it goes on watching.
  const next = await pub.publish('E', 8);
  const more = await buffered(w, 9);
  expect(more[8]).toEqual({ name: 'E', payload: 8, index: next.index });
  expect(new Set(more.map((e) => e.index)).size).toBe(9);
});

function revisionOfHeader(res: { header: { revision: string } }): number {
  return Number(res.header.revision);
}

// Last in the file: it kills and restarts an etcd member.
test('a watch cut off by its etcd member going down resumes after the last event it had, missing none', async () => {
  const keys = freshKeys();
  const member = etcd.members[0]!;
  // The watcher talks to one member only, so killing it surely cuts the watch.
  const only = noRetryClient(member.clientUrl);
  clients.push(only);
  const others = noRetryClient(etcd.members.slice(1).map((m) => m.clientUrl));
  clients.push(others);
  const logger = recorder();
  const w = events(keys, 'w', { client: only, logger });
  const pub = events(keys, 'p', { client: others });
  await w.start(0);
  const indexes: number[] = [];
  for (let i = 0; i < 3; i++) indexes.push((await pub.publish('E', i)).index);
  await buffered(w, 3);
  await member.stop('SIGKILL');
  for (let i = 3; i < 8; i++) indexes.push((await pub.publish('E', i)).index);
  await etcd.restart(member);
  const all = await buffered(w, 8, 0);
  expect(all.map((e) => e.index)).toEqual(indexes);
  expect(logger.warnings.some((m) => m.includes('etcd watch on events failed'))).toBe(true);
  indexes.push((await pub.publish('E', 8)).index);
  expect((await buffered(w, 9)).map((e) => e.index)).toEqual(indexes);
});
