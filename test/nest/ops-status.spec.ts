import type { ClusterStatusReport } from '../../lib/index';
import { startHttpCluster, waitFor } from './ops-apps';

/** GET /cluster/status and /cluster over real HTTP, three apps in this process. */

jest.setTimeout(60_000);

describe('status endpoint and page, three nodes', () => {
  let c: Awaited<ReturnType<typeof startHttpCluster>>;
  const status = async (n: { get: (p: string) => Promise<{ json: unknown }> }) => (await n.get('/cluster/status')).json as ClusterStatusReport;

  beforeAll(async () => {
    c = await startHttpCluster(18800, 18803, () => ({ statusPath: true, pagePath: true }));
  });
  afterAll(() => c.close());

  test('every node reports DESIGN §7 fields, agreeing on the leader; followers show the leader-side lag', async () => {
    const writer = c.nodes[0]!;
    for (let i = 0; i < 20; i++) await writer.cluster.store.put(`k${i}`, i);
    // One round of reports that agree (leadership may move on a busy machine; then the next round is taken).
    const reports = await waitFor('a round of reports agreeing on a leased leader, every member caught up', 10_000, async () => {
      const all = await Promise.all(c.nodes.map(status));
      const leaderId = all[0]!.leaderId;
      const agree = all.every((r) => r.leaderId === leaderId && r.term === all[0]!.term && r.viewFrom === leaderId);
      const leased = all.some((r) => r.nodeId === leaderId && r.leaseValid);
      const caughtUp = all.every((r) => r.members.every((m) => m.lag === 0) && r.appliedIndex === r.commitIndex);
      return leaderId && agree && leased && caughtUp ? all : undefined;
    });
    const leaderId = reports[0]!.leaderId!;
    for (const [i, r] of reports.entries()) {
      const n = c.nodes[i]!;
      expect(r).toMatchObject({ nodeId: n.id, isLeader: n.id === leaderId });
      expect(r.role).toBe(n.id === leaderId ? 'leader' : 'follower');
      expect(r.leaseValid).toBe(n.id === leaderId);
      expect(r.commitIndex).toBeGreaterThanOrEqual(20);
      expect(typeof r.snapshotIndex).toBe('number');
      expect(r.members.map((m) => m.id)).toEqual(['a', 'b', 'c']);
      for (const m of r.members) {
        expect(m.address).toBe(`127.0.0.1:${18803 + ['a', 'b', 'c'].indexOf(m.id)}`);
        expect(m.isSelf).toBe(m.id === n.id);
        expect(m.role).toBe(m.id === leaderId ? 'leader' : 'follower');
        expect(m.matchIndex).toBeGreaterThanOrEqual(r.commitIndex);
        expect(m.lastContactMs).toBeGreaterThanOrEqual(0);
        expect(m.lastContactMs).toBeLessThan(1000);
        expect(m.connected).toBe(m.isSelf ? null : true);
        expect(m.reachable).toBe(m.isSelf ? null : true);
      }
      expect(r.leadershipChanges[0]).toMatchObject({ term: r.term, leaderId });
      expect(Math.abs(r.time - Date.now())).toBeLessThan(5000);
    }
  });

  test('the latest task runs from the replicated ledger are in every report', async () => {
    const recorder = await c.leader(); // a run's start is recorded by the leader that runs it; `node` is its id
    const fire = Date.now();
    await recorder.cluster.tasks.start('nightly-report', fire);
    await recorder.cluster.tasks.finish('nightly-report', fire, 'error', 'disk <full> & "quoted"');
    for (const n of c.nodes) {
      const r = await waitFor(`the run on ${n.id}`, 5000, async () => {
        const s = await status(n);
        return s.tasks.some((t) => t.task === 'nightly-report' && t.outcome === 'error') ? s : undefined;
      });
      expect(r.tasks[0]).toMatchObject({ task: 'nightly-report', fireTime: fire, node: recorder.id, outcome: 'error', error: 'disk <full> & "quoted"' });
    }
  });

  test('the page is one self-contained document that polls the status relative to its own path', async () => {
    const r = await c.nodes[0]!.get('/cluster');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(r.text).toContain('<body data-status="status">');
    expect(r.text).not.toMatch(/(src|href)="(https?:)?\/\//); // nothing loaded from elsewhere
    expect(r.text).not.toContain('innerHTML');
  });

  test('a leadership transfer shows up in the history; a stopped member becomes unreachable in every report', async () => {
    const before = await c.leader();
    const target = c.nodes.find((n) => n.id !== before.id)!;
    await before.cluster.transferLeadership(target.id);
    const moved = await waitFor('the new leader in the history of every node', 10_000, async () => {
      const all = await Promise.all(c.nodes.map(status));
      return all.every((r) => r.leaderId === target.id && r.leadershipChanges[0]?.leaderId === target.id) ? all : undefined;
    });
    for (const r of moved) expect(r.leadershipChanges.map((x) => x.leaderId)).toContain(before.id);

    const victim = c.nodes.find((n) => n.id !== target.id)!;
    const survivor = c.nodes.find((n) => n.id !== target.id && n.id !== victim.id)!;
    await victim.close();
    for (let i = 0; i < 5; i++) await target.cluster.store.put(`after-${i}`, i); // the victim falls behind
    for (const n of [target, survivor]) {
      const r = await waitFor(`${victim.id} unreachable on ${n.id}`, 10_000, async () => {
        const s = await status(n);
        const m = s.members.find((x) => x.id === victim.id)!;
        // Silent past an election timeout (150 ms) in the leader's view, and behind by the writes since.
        return m.reachable === false && (m.lastContactMs ?? 0) > 150 && (m.lag ?? 0) >= 5 ? s : undefined;
      });
      const m = r.members.find((x) => x.id === victim.id)!;
      expect(m.connected).toBe(false);
      expect(r.viewFrom).toBe(r.leaderId);
    }
  });

  test('with no quorum left the last member reports no leader, and only its own view', async () => {
    const leader = await c.leader();
    const last = c.nodes.find((n) => n !== leader && n.app.getHttpServer().listening)!;
    await leader.close();
    const r = await waitFor(`no leader on ${last.id}`, 10_000, async () => {
      const s = await status(last);
      return s.leaderId === null ? s : undefined;
    });
    expect(r).toMatchObject({ nodeId: last.id, isLeader: false, leaseValid: false, viewFrom: last.id });
    for (const m of r.members) {
      expect(m).toMatchObject({ matchIndex: null, lag: null, role: m.isSelf ? r.role : 'unknown' });
      if (!m.isSelf) expect(m).toMatchObject({ connected: false, reachable: false });
    }
  });
});
