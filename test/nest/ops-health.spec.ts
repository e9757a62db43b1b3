import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule, type HealthIndicatorFunction } from '@nestjs/terminus';
import { ClusterHealthIndicator } from '../../lib/index';
import { startHttpCluster, waitFor, type OpsNode } from './ops-apps';

/** ClusterHealthIndicator inside a real @nestjs/terminus health check, over HTTP, three apps in this process. */

jest.setTimeout(60_000);

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cluster: ClusterHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    const indicator: HealthIndicatorFunction = () => this.cluster.isHealthy('raft');
    return this.health.check([indicator]);
  }
}

describe('cluster health for terminus', () => {
  let c: Awaited<ReturnType<typeof startHttpCluster>>;
  const health = (n: OpsNode) => n.get('/health');

  beforeAll(async () => {
    c = await startHttpCluster(18820, 18823, () => ({}), { imports: [TerminusModule.forRoot({ logger: false })], controllers: [HealthController] });
  });
  afterAll(() => c.close());

  test('up on every member while a leader holds a quorum', async () => {
    const all = await waitFor('every member healthy, agreeing on leader and term', 10_000, async () => {
      const hs = await Promise.all(c.nodes.map(health));
      const first = hs[0]!.json?.info?.raft;
      const agree = hs.every((h) => h.status === 200 && h.json.info.raft.leaderId === first?.leaderId && h.json.info.raft.term === first?.term);
      return agree ? hs : undefined;
    });
    const { leaderId, term } = all[0]!.json.info.raft;
    for (const [i, n] of c.nodes.entries()) {
      expect(all[i]!.json).toEqual({
        status: 'ok',
        info: { raft: { status: 'up', nodeId: n.id, role: n.id === leaderId ? 'leader' : 'follower', leaderId, term } },
        error: {},
        details: { raft: { status: 'up', nodeId: n.id, role: n.id === leaderId ? 'leader' : 'follower', leaderId, term } },
      });
    }
  });

  test('down (503) on the last member once the other two are gone', async () => {
    const leader = await c.leader();
    const last = c.nodes.find((n) => n.id !== leader.id)!;
    await Promise.all(c.nodes.filter((n) => n !== last).map((n) => n.close()));
    // The closing leader may hand over to `last`, which then leads without a quorum until it steps down.
    const r = await waitFor(`${last.id} unhealthy with no leader`, 10_000, async () => {
      const h = await health(last);
      return h.status === 503 && h.json.error.raft.leaderId === null ? h : undefined;
    });
    expect(r.json).toMatchObject({
      status: 'error',
      error: { raft: { status: 'down', nodeId: last.id, leaderId: null, message: expect.stringMatching(/no leader is known/) } },
    });
    // It stays down: no quorum can form with one member of three.
    await new Promise((res) => setTimeout(res, 600));
    expect((await health(last)).status).toBe(503);
  });
});

test('a leader that lost its quorum is down too (its lease lapses before it steps down)', async () => {
  const c = await startHttpCluster(18826, 18829, () => ({}), { imports: [TerminusModule.forRoot({ logger: false })], controllers: [HealthController] });
  try {
    const leader = await c.leader();
    expect((await leader.get('/health')).status).toBe(200);
    // Stopping followers does not hand anything over; the leader is left alone with no quorum.
    await Promise.all(c.nodes.filter((n) => n !== leader).map((n) => n.close()));
    const r = await waitFor(`${leader.id} unhealthy`, 10_000, async () => {
      const h = await leader.get('/health');
      return h.status === 503 ? h : undefined;
    });
    expect(r.json.error.raft).toMatchObject({ status: 'down', nodeId: leader.id });
    expect(r.json.error.raft.message).toMatch(/lease|no leader is known/);
  } finally {
    await c.close();
  }
});
