import { CommandBus } from '@nestjs/cqrs';
import { Registry } from 'prom-client';
import { CreateOrder } from './fixtures';
import { startHttpCluster, waitFor, type OpsNode } from './ops-apps';

/** catga_* metrics in prom-client registries, scraped over HTTP from three apps in this process. */

jest.setTimeout(60_000);

const NAMES = [
  'catga_term',
  'catga_is_leader',
  'catga_lease_valid',
  'catga_role',
  'catga_commit_index',
  'catga_applied_index',
  'catga_last_index',
  'catga_snapshot_index',
  'catga_peer_lag_entries',
  'catga_peer_last_contact_seconds',
  'catga_proposals_total',
  'catga_proposal_duration_seconds',
  'catga_forward_duration_seconds',
  'catga_leader_changes_total',
  'catga_fsync_duration_seconds',
];

/** The sample's value with exactly these labels (0 when the series does not exist yet). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('one registry per node, served at /metrics', () => {
  const registries = new Map(['a', 'b', 'c'].map((id) => [id, new Registry()]));
  let c: Awaited<ReturnType<typeof startHttpCluster>>;
  const scrape = async (n: OpsNode) => (await n.get('/metrics')).text;

  beforeAll(async () => {
    c = await startHttpCluster(18830, 18833, (id) => ({ metrics: { registry: registries.get(id)! }, metricsPath: '/metrics' }));
  });
  afterAll(() => c.close());

  test('every metric is there, with the node label; state gauges read the node at scrape time', async () => {
    // One round of scrapes taken while leadership holds still (it may move on a busy machine; then the next round).
    const { leader, texts } = await waitFor('a round of scrapes with one leased leader and one term', 10_000, async () => {
      const texts = await Promise.all(c.nodes.map(scrape));
      const leaders = c.nodes.filter((n, i) => sample(texts[i]!, 'catga_is_leader', { node: n.id }) === 1);
      const terms = new Set(c.nodes.map((n, i) => sample(texts[i]!, 'catga_term', { node: n.id })));
      const leased = leaders.length === 1 && sample(texts[c.nodes.indexOf(leaders[0]!)]!, 'catga_lease_valid', { node: leaders[0]!.id }) === 1;
      return leased && terms.size === 1 ? { leader: leaders[0]!, texts } : undefined;
    });
    for (const [i, n] of c.nodes.entries()) {
      const text = texts[i]!;
      for (const name of NAMES) expect(text).toContain(`# TYPE ${name} `);
      expect(sample(text, 'catga_role', { node: n.id, role: n.id === leader.id ? 'leader' : 'follower' })).toBe(1);
      expect(sample(text, 'catga_role', { node: n.id, role: 'candidate' })).toBe(0);
      expect(sample(text, 'catga_term', { node: n.id })).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'catga_leader_changes_total', { node: n.id })).toBeGreaterThanOrEqual(1);
      expect(text).not.toMatch(new RegExp(`node="(?!${n.id}")`)); // its own registry holds only its own series
    }
    const text = texts[c.nodes.indexOf(leader)]!;
    for (const f of c.nodes.filter((n) => n !== leader)) {
      expect(text).toMatch(new RegExp(`^catga_peer_lag_entries\\{node="${leader.id}",peer="${f.id}"\\} \\d+$`, 'm'));
      expect(sample(text, 'catga_peer_last_contact_seconds', { node: leader.id, peer: f.id })).toBeLessThan(1);
    }
  });

  test('writes move the proposal counters, the fsync histogram and the indexes', async () => {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const [l0, f0] = [await scrape(leader), await scrape(follower)];
    for (let i = 0; i < 10; i++) await leader.cluster.store.put(`m${i}`, i);
    for (let i = 0; i < 3; i++) await follower.cluster.store.put(`f${i}`, i); // proposed on the follower, committed by the leader
    const [l1, f1] = [await scrape(leader), await scrape(follower)];
    const delta = (a: string, b: string, name: string, labels: Record<string, string>) => sample(b, name, labels) - sample(a, name, labels);
    expect(delta(l0, l1, 'catga_proposals_total', { node: leader.id, module: 'kv', outcome: 'ok' })).toBe(10);
    expect(delta(l0, l1, 'catga_proposal_duration_seconds_count', { node: leader.id, module: 'kv' })).toBe(10);
    expect(delta(f0, f1, 'catga_proposals_total', { node: follower.id, module: 'kv', outcome: 'ok' })).toBe(3);
    expect(delta(l0, l1, 'catga_fsync_duration_seconds_count', { node: leader.id, op: 'append' })).toBeGreaterThanOrEqual(1);
    expect(delta(l0, l1, 'catga_fsync_duration_seconds_sum', { node: leader.id, op: 'append' })).toBeGreaterThan(0);
    expect(delta(l0, l1, 'catga_commit_index', { node: leader.id })).toBeGreaterThanOrEqual(13);
    await waitFor('the follower applying the writes', 5000, async () => {
      const f2 = await scrape(follower);
      return delta(f0, f2, 'catga_applied_index', { node: follower.id }) >= 13 ? true : undefined;
    });
  });

  test('@ForwardToLeader round trips are timed on the follower, by outcome', async () => {
    const leader = await c.leader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const labels = (outcome: string) => ({ node: follower.id, kind: 'command', outcome, le: '+Inf' });
    const before = await scrape(follower);
    const bus = follower.app.get(CommandBus);
    await bus.execute(new CreateOrder('metrics-1', 5));
    await bus.execute(new CreateOrder('metrics-2', 5));
    await expect(bus.execute(new CreateOrder('metrics-3', -1))).rejects.toThrow(/negative/);
    const after = await scrape(follower);
    expect(sample(after, 'catga_forward_duration_seconds_bucket', labels('ok')) - sample(before, 'catga_forward_duration_seconds_bucket', labels('ok'))).toBe(2);
    expect(sample(after, 'catga_forward_duration_seconds_bucket', labels('error')) - sample(before, 'catga_forward_duration_seconds_bucket', labels('error'))).toBe(1);
    // The leader ran them locally: nothing forwarded there.
    expect(await scrape(leader)).not.toMatch(/^catga_forward_duration_seconds_count\{.*\} [1-9]/m);
  });
});

test('nodes sharing one registry report side by side, and take their series out as they stop', async () => {
  const shared = new Registry();
  const c = await startHttpCluster(18836, 18839, () => ({ metrics: { registry: shared } }));
  try {
    const leader = await c.leader();
    const text = await shared.metrics();
    for (const n of c.nodes) expect(sample(text, 'catga_is_leader', { node: n.id })).toBe(n.id === leader.id ? 1 : 0);
    const gone = c.nodes.find((n) => n !== leader)!;
    await gone.close();
    const after = await shared.metrics();
    expect(after).not.toContain(`catga_term{node="${gone.id}"}`);
    expect(after).toMatch(new RegExp(`^catga_term\\{node="${leader.id}"\\} \\d+$`, 'm'));
  } finally {
    await c.close();
  }
  expect(await shared.metrics()).not.toContain('catga_');
});
