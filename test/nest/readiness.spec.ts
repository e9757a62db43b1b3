import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, ClusterHealthIndicator, ClusterOptionsError } from '../../lib/index';
import { freePorts } from '../transport/helpers';
import { quiet, startHttpApp, waitFor, type HttpApp } from './ops-apps';

/**
 * Start order: bootstrap does not wait for a leader, so the first pod of a StatefulSet (started one at a time) can
 * listen and be live while it is not ready yet. Real HTTP on 127.0.0.1, free ports, three apps in this process.
 */

jest.setTimeout(60_000);

const ids = ['a', 'b', 'c'] as const;
/** The lone node's warning delay; its listen must come well before (the old bootstrap waited this long). */
const STARTUP_TIMEOUT = 3000;

/** What the module's Nest Logger said (its lines are recognized by their text). */
const said: { level: 'log' | 'warn'; message: string }[] = [];
const readyLines = () => said.filter((l) => l.level === 'log' && l.message.startsWith('cluster ready: '));
const warned = (pattern: RegExp) => said.some((l) => l.level === 'warn' && pattern.test(l.message));

let dir: string;
const apps: HttpApp[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'catga-readiness-'));
  for (const level of ['log', 'warn'] as const) {
    jest.spyOn(Logger.prototype, level).mockImplementation((message: unknown, ..._context: unknown[]) => {
      if (typeof message === 'string') said.push({ level, message });
    });
  }
});
afterAll(async () => {
  await Promise.all(apps.splice(0).map((a) => a.app.close()));
  jest.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

/** A 3-member configuration on free ports, whose members are started one by one. */
async function threeMembers(name: string) {
  const ports = await freePorts(2 * ids.length);
  const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[ids.length + i]}`);
  return async (id: (typeof ids)[number], extra: object = {}): Promise<HttpApp> => {
    const options = { nodeId: id, members, dataDir: join(dir, name, id), secret: 'readiness-secret', logger: quiet, ...extra };
    const app = await startHttpApp(CatgaClusterModule.forRoot(options), ports[ids.indexOf(id)]!);
    apps.push(app);
    return app;
  };
}

describe('a StatefulSet-style start: one member, then the others', () => {
  let start: Awaited<ReturnType<typeof threeMembers>>;
  let a: HttpApp;

  beforeAll(async () => {
    start = await threeMembers('sts');
  });

  test('the first member alone listens at once: live 200, ready 503 with a reason, a warning after startupTimeout', async () => {
    const t0 = Date.now();
    a = await start('a', { startupTimeout: STARTUP_TIMEOUT });
    expect(Date.now() - t0).toBeLessThan(STARTUP_TIMEOUT);

    const live = await a.get('/cluster/health/live');
    expect(live.status).toBe(200);
    expect(live.headers.get('cache-control')).toBe('no-store');
    expect(live.json).toEqual({ status: 'up', nodeId: 'a', role: expect.any(String), leaderId: null, term: expect.any(Number) });

    const ready = await a.get('/cluster/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.headers.get('cache-control')).toBe('no-store');
    expect(ready.json).toMatchObject({ status: 'down', nodeId: 'a', leaderId: null, message: expect.stringMatching(/no leader is known/) });

    await waitFor('the no-leader warning', STARTUP_TIMEOUT + 5000, async () => (warned(/^no leader after 3000 ms; starting anyway/) || undefined));
    expect(readyLines()).toEqual([]);
    expect((await a.get('/cluster/health/ready')).status).toBe(503); // one of three can elect no one
  });

  test('the other two join: ready 200 on all three, and each logs its first leader once', async () => {
    const all = [a, await start('b'), await start('c')];
    const probes = await waitFor('ready on all three, agreeing on the leader', 15_000, async () => {
      const rs = await Promise.all(all.map((n) => n.get('/cluster/health/ready')));
      const leaderId = rs[0]!.json?.leaderId;
      return rs.every((r) => r.status === 200 && r.json.leaderId === leaderId) ? rs : undefined;
    });
    const leaderId = probes[0]!.json.leaderId;
    expect(ids).toContain(leaderId);
    for (const [i, r] of probes.entries()) {
      expect(r.json).toEqual({
        status: 'up',
        nodeId: ids[i],
        role: ids[i] === leaderId ? 'leader' : 'follower',
        leaderId,
        term: expect.any(Number),
        commitIndex: expect.any(Number),
        appliedIndex: expect.any(Number),
      });
      expect(r.json.appliedIndex).toBeGreaterThanOrEqual(r.json.commitIndex);
      expect((await all[i]!.get('/cluster/health/live')).status).toBe(200);
    }

    await waitFor('a ready line from each member', 5000, async () => (readyLines().length >= 3 || undefined));
    // A later leader is no first leader: no more lines.
    const cluster = all[0]!.app.get(ClusterCoordinator);
    await cluster.transferLeadership();
    await waitFor('every member on the new leader', 10_000, async () => {
      const rs = await Promise.all(all.map((n) => n.get('/cluster/health/ready')));
      return rs.every((r) => r.status === 200 && r.json.leaderId !== leaderId && r.json.leaderId === rs[0]!.json.leaderId) || undefined;
    });
    expect(readyLines()).toHaveLength(3);
    expect(readyLines().map((l) => l.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(new RegExp(`^cluster ready: this node leads \\(embedded backend, term \\d+; members a, b, c\\)$`))]),
    );
  });
});

test('shutdown ends the startup watch: a closed app warns no more, and reports itself not live', async () => {
  const start = await threeMembers('closed');
  const lone = await start('a', { startupTimeout: 1000 });
  const health = lone.app.get(ClusterHealthIndicator);
  expect(health.isLive('raft')).toMatchObject({ raft: { status: 'up' } });
  await lone.app.close();
  apps.splice(apps.indexOf(lone), 1);
  expect(health.isLive('raft')).toMatchObject({ raft: { status: 'down', nodeId: 'a', message: expect.stringMatching(/stopped/) } });
  expect(health.isReady().cluster).toMatchObject({ status: 'down', message: expect.stringMatching(/stopped/) });
  await new Promise((r) => setTimeout(r, 1500));
  expect(warned(/^no leader after 1000 ms/)).toBe(false);
});

test('ready waits until the node has applied what it knows is committed', () => {
  // The fields of cluster.status() the indicator reads.
  const status = {
    nodeId: 'b',
    role: 'follower',
    isLeader: false,
    leaderId: 'a',
    term: 3,
    commitIndex: 120,
    appliedIndex: 80,
    snapshotIndex: 0,
    lastIndex: 120,
    leaseValid: false,
  };
  const cluster = { status: () => status, isRunning: true };
  const health = new ClusterHealthIndicator(cluster as unknown as ClusterCoordinator);
  expect(health.isReady().cluster).toEqual({
    status: 'down',
    nodeId: 'b',
    role: 'follower',
    leaderId: 'a',
    term: 3,
    commitIndex: 120,
    appliedIndex: 80,
    message: 'catching up: applied log index 80 of 120 committed',
  });
  expect(health.isLive().cluster.status).toBe('up');
  expect(health.isHealthy().cluster.status).toBe('up');
  Object.assign(status, { appliedIndex: 120 });
  expect(health.isReady().cluster).toMatchObject({ status: 'up' });
  cluster.isRunning = false; // stopped, or halted by a storage failure
  expect(health.isLive().cluster).toMatchObject({ status: 'down', message: expect.stringMatching(/stopped.*storage failed/) });
});

describe('the healthPath route option', () => {
  let seq = 0;
  const solo = (extra: object = {}) => ({ nodeId: 'solo', dataDir: join(dir, `solo${++seq}`), logger: quiet, ...extra });
  const soloApp = async (extra: object) => {
    const [port] = await freePorts(1);
    const app = await startHttpApp(CatgaClusterModule.forRoot(solo(extra)), port!);
    apps.push(app);
    return app;
  };

  test('moves the probes, or turns them off with false', async () => {
    const moved = await soloApp({ healthPath: '/k8s/' });
    await waitFor('the moved readiness probe up', 5000, async () => ((await moved.get('/k8s/ready')).status === 200 || undefined));
    expect((await moved.get('/k8s/live')).json).toMatchObject({ status: 'up', nodeId: 'solo', leaderId: 'solo' });
    expect((await moved.get('/cluster/health/ready')).status).toBe(404);

    const off = await soloApp({ healthPath: false, statusPath: true });
    expect((await off.get('/cluster/health/ready')).status).toBe(404);
    expect((await off.get('/cluster/health/live')).status).toBe(404);
    expect((await off.get('/cluster/status')).status).toBe(200);
  });

  test.each([
    ['the same path as another route', { statusPath: true, healthPath: '/cluster/status' }, /options statusPath, healthPath: expected different paths, got \/cluster\/status, \/cluster\/status/],
    ['another route on a probe', { metricsPath: '/cluster/health/live' }, /options metricsPath, healthPath \+ '\/live': expected different paths/],
    ['a root healthPath whose probe is another route', { healthPath: '/', statusPath: '/live', pagePath: false }, /options statusPath, healthPath \+ '\/live': expected different paths, got \/live, \/live/],
    ['not a path', { healthPath: '/cluster/:probe' }, /option healthPath: expected a path like '\/cluster\/health'/],
  ])('refuses %s', (_name, routes, message) => {
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(ClusterOptionsError);
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(message);
  });

  test('refuses it from an async factory', async () => {
    const builder = Test.createTestingModule({ imports: [CatgaClusterModule.forRootAsync({ useFactory: () => ({ ...solo(), healthPath: '/x' }) })] });
    await expect(builder.compile()).rejects.toThrow(/option healthPath: expected in forRootAsync\(\{ \.\.\. \}\) itself/);
  });
});
