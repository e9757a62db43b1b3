/**
 * Membership changes between real node processes on 127.0.0.1 (free ports), under write load: grow 3 → 5 by joining
 * through seeds, shrink 5 → 3 removing the leader too, and replace a node killed for good with a fresh one. After each
 * step every acknowledged write is read back on every member. Needs `npm run build` first.
 */
import type { ReadKeysResult, WriteLoadResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, waitUntil, type NodeProcess } from '../support/process-cluster.js';
import { freePorts } from '../transport/helpers.js';

jest.setTimeout(90_000);

interface MemberInfo {
  readonly id: string;
  readonly membership: 'voter' | 'learner';
}

let cluster: ProcessCluster;
let ports: number[];
/** Acknowledged keys of every write load so far: each must be readable on every member after every step. */
const acked: string[] = [];

beforeAll(async () => {
  assertBuilt();
  ports = await freePorts(6);
  cluster = new ProcessCluster({
    ids: ['n1', 'n2', 'n3'],
    ports,
    // The leader keeps five voters by promoting caught-up learners; a voter silent for 3 s is replaced by a learner.
    env: { CATGA_TARGET_VOTERS: '5', CATGA_AUTO_REMOVE_AFTER: '3000' },
  });
  await cluster.start();
  await cluster.leader(10_000);
});

afterAll(async () => {
  await cluster?.destroy();
});

const seeds = (): string[] => cluster.nodes.filter((n) => n.running).map((n) => `127.0.0.1:${ports[Number(n.id.slice(1)) - 1]}`);

async function members(on: NodeProcess): Promise<string> {
  const ms = await on.request<MemberInfo[]>({ op: 'members' });
  return ms
    .map((m) => `${m.id}:${m.membership}`)
    .sort()
    .join(',');
}

/** Waits until every running node reports `expected` as the member list. */
async function allSee(expected: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(`every node sees ${expected}`, timeoutMs, async () => {
    const seen = await Promise.all(cluster.nodes.filter((n) => n.running).map((n) => members(n)));
    return seen.every((s) => s === expected) ? true : undefined;
  });
}

/** A write load on `on` for `ms`, while `during` runs; its acknowledged keys join `acked`. */
async function underLoad(on: NodeProcess, prefix: string, ms: number, during: () => Promise<void>): Promise<WriteLoadResult> {
  const load = on.request<WriteLoadResult>({ op: 'writeLoad', writers: 4, durationMs: ms, keyPrefix: prefix }, ms + 30_000);
  await during();
  const r = await load;
  acked.push(...r.acked);
  return r;
}

/** Every acknowledged write so far is there, on every running node, after a linearizable read barrier. */
async function noAckedWriteLost(): Promise<void> {
  for (const n of cluster.nodes.filter((x) => x.running)) {
    const r = await n.request<ReadKeysResult>({ op: 'readKeys', keys: acked, consistency: 'linearizable' }, 30_000);
    expect({ node: n.id, missing: r.missing }).toEqual({ node: n.id, missing: [] });
  }
}

test('grow 3 → 5 under write load: two nodes join by seed, catch up and are promoted to voters', async () => {
  const r = await underLoad(cluster.node('n1'), 'grow-', 4000, async () => {
    await cluster.join('n4', ports[3]!, seeds());
    await cluster.join('n5', ports[4]!, seeds());
    await allSee('n1:voter,n2:voter,n3:voter,n4:voter,n5:voter');
  });
  expect(r.acked.length).toBeGreaterThan(100);
  const history = await (await cluster.leader()).request<{ change: string }[]>({ op: 'membershipHistory' });
  const changes = history.map((h) => h.change);
  for (const x of ['n4 joined as learner', 'n4 promoted to voter', 'n5 joined as learner', 'n5 promoted to voter']) expect(changes).toContain(x);
  await noAckedWriteLost();
});

test('shrink 5 → 3 under write load, removing the leader first: it hands leadership over, then leaves', async () => {
  const leader = await cluster.leader();
  const asker = cluster.nodes.find((n) => n !== leader && n.id !== 'n1') ?? cluster.nodes.find((n) => n !== leader)!;
  const writer = cluster.nodes.find((n) => n !== leader && n !== asker)!;
  const removed: NodeProcess[] = [leader];
  await underLoad(writer, 'shrink-', 4000, async () => {
    await asker.request({ op: 'memberChange', change: 'remove', member: leader.id });
    const other = cluster.nodes.find((n) => n !== leader && n !== asker && n !== writer)!;
    removed.push(other);
    await asker.request({ op: 'memberChange', change: 'remove', member: other.id });
  });
  const next = await cluster.leader(10_000, cluster.nodes.filter((n) => !removed.includes(n)));
  expect(removed).not.toContain(next);
  for (const n of removed) {
    await n.signal('SIGKILL');
    cluster.forget(n);
  }
  await allSee(cluster.nodes.map((n) => `${n.id}:voter`).sort().join(','));
  await noAckedWriteLost();
});

test('replace a node killed for good: a fresh node joins by seed, and the dead voter is removed after autoRemoveAfter', async () => {
  const leader = await cluster.leader();
  const dead = cluster.nodes.find((n) => n !== leader)!;
  const writer = cluster.nodes.find((n) => n !== leader && n !== dead)!;
  await dead.signal('SIGKILL');
  cluster.forget(dead);
  await underLoad(writer, 'replace-', 6000, async () => {
    await cluster.join('n6', ports[5]!, seeds());
    await allSee([...cluster.nodes.map((n) => `${n.id}:voter`)].sort().join(','), 30_000);
  });
  const history = await (await cluster.leader()).request<{ change: string }[]>({ op: 'membershipHistory' });
  expect(history.map((h) => h.change)).toContain(`${dead.id} removed`);
  await noAckedWriteLost();
});
