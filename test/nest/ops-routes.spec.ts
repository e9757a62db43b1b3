import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register, Registry } from 'prom-client';
import { CatgaClusterModule, ClusterOptionsError } from '../../lib/index';
import { quiet, startHttpApp, type HttpApp } from './ops-apps';

/** Route options of the ops endpoints over real HTTP, on single-member clusters (they lead at once). */

jest.setTimeout(30_000);

let dir: string;
let seq = 0;
const solo = (extra: object = {}) => ({ nodeId: 'solo', dataDir: join(dir, `n${++seq}`), logger: quiet, ...extra });
const apps: HttpApp[] = [];
const start = async (...args: Parameters<typeof startHttpApp>) => {
  const a = await startHttpApp(...args);
  apps.push(a);
  return a;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'catga-ops-routes-'));
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.app.close()));
  rmSync(dir, { recursive: true, force: true });
});

// Off by default (nothing is served unless asked for): test/nest/ops-access.spec.ts.
test('opted in with true: status at /cluster/status, page at /cluster, no metrics endpoint', async () => {
  const a = await start(CatgaClusterModule.forRoot(solo({ statusPath: true, pagePath: true })), 18806);
  const s = await a.get('/cluster/status');
  expect(s.status).toBe(200);
  expect(s.headers.get('cache-control')).toBe('no-store');
  expect(s.json).toMatchObject({ nodeId: 'solo', isLeader: true, leaderId: 'solo', viewFrom: 'solo' });
  expect(s.json.members).toEqual([
    { id: 'solo', address: '127.0.0.1:7001', isSelf: true, role: 'leader', membership: 'voter', connected: null, matchIndex: expect.any(Number), lag: 0, lastContactMs: 0, reachable: null },
  ]);
  expect((await a.get('/cluster')).text).toContain('data-status="status"');
  expect((await a.get('/metrics')).status).toBe(404);
});

test('custom paths move the routes; the page finds the status relative to itself', async () => {
  const a = await start(CatgaClusterModule.forRoot(solo({ statusPath: 'ops/state/', pagePath: '/ops/dashboard', metricsPath: '/ops/metrics' })), 18807);
  expect((await a.get('/ops/state')).json).toMatchObject({ nodeId: 'solo' });
  expect((await a.get('/ops/dashboard')).text).toContain('data-status="../state"');
  expect((await a.get('/cluster/status')).status).toBe(404);
  expect((await a.get('/cluster')).status).toBe(404);
  const m = await a.get('/ops/metrics');
  expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(m.text).toMatch(/^catga_is_leader\{node="solo"\} 1$/m);
});

test('false turns a route off', async () => {
  const a = await start(CatgaClusterModule.forRoot(solo({ statusPath: false, pagePath: false })), 18808);
  expect((await a.get('/cluster/status')).status).toBe(404);
  expect((await a.get('/cluster')).status).toBe(404);
  const b = await start(CatgaClusterModule.forRoot(solo({ statusPath: true, pagePath: false })), 18809);
  expect((await b.get('/cluster/status')).status).toBe(200);
  expect((await b.get('/cluster')).status).toBe(404);
});

test('behind a global prefix both routes move together', async () => {
  const a = await start(CatgaClusterModule.forRoot(solo({ pagePath: true })), 18810, { prefix: 'api' });
  expect((await a.get('/api/cluster/status')).json).toMatchObject({ nodeId: 'solo' });
  expect((await a.get('/api/cluster')).text).toContain('data-status="status"');
});

test('forRootAsync takes the routes next to the factory', async () => {
  const a = await start(CatgaClusterModule.forRootAsync({ useFactory: () => solo(), statusPath: '/health/cluster', pagePath: false }), 18811);
  expect((await a.get('/health/cluster')).json).toMatchObject({ nodeId: 'solo', leaderId: 'solo' });
  expect((await a.get('/cluster')).status).toBe(404);
});

test('the module boots and serves with metrics off; no catga_* metric is registered', async () => {
  const a = await start(CatgaClusterModule.forRoot(solo({ metrics: false, statusPath: true })), 18812);
  expect((await a.get('/cluster/status')).json).toMatchObject({ isLeader: true });
  expect(await register.metrics()).not.toContain('catga_'); // earlier apps were closed, which takes theirs out
});

describe('bad route and metrics options fail at bootstrap, naming the option', () => {
  test.each([
    ['a path with a query', { statusPath: '/cluster?x=1' }, /option statusPath: expected a path like '\/cluster\/status'/],
    ['a route parameter', { pagePath: '/cluster/:id' }, /option pagePath: expected a path like '\/cluster'/],
    ['not a string', { metricsPath: 42 as unknown as string }, /option metricsPath: expected a path like '\/metrics'/],
    ['the same path twice', { pagePath: '/cluster/status' }, /expected different paths, got \/cluster\/status, \/cluster\/status/],
    ['a page without a status', { statusPath: false, pagePath: true }, /option pagePath: the page polls statusPath, which is false/],
  ])('%s', (_name, routes, message) => {
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(ClusterOptionsError);
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(message);
  });

  test('route options returned by an async factory', async () => {
    const builder = Test.createTestingModule({ imports: [CatgaClusterModule.forRootAsync({ useFactory: () => ({ ...solo(), statusPath: '/x' }) })] });
    await expect(builder.compile()).rejects.toThrow(/option statusPath: expected in forRootAsync\(\{ \.\.\. \}\) itself, not returned by useFactory/);
  });

  test('a metrics endpoint with metrics off', async () => {
    await expect(startHttpApp(CatgaClusterModule.forRoot(solo({ metrics: false, metricsPath: '/metrics' })), 18813)).rejects.toThrow(
      /option metricsPath: expected metrics to be on/,
    );
  });

  test('a registry that is not one', async () => {
    const builder = Test.createTestingModule({ imports: [CatgaClusterModule.forRoot(solo({ metrics: { registry: {} as Registry } }))] });
    await expect(builder.compile()).rejects.toThrow(/option metrics.registry: expected a prom-client Registry/);
  });
});
