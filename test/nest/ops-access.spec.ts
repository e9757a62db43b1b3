import { Inject, Injectable, Module, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterOptionsError, type ClusterRouteOptions } from '../../lib/index';
import { freePorts } from '../transport/helpers';
import { quiet, startHttpApp, type HttpApp } from './ops-apps';

/**
 * The ops routes are safe by default: nothing that shows the cluster's layout (status, page, metrics) is served
 * unless the app asks, and what it asks for can be put behind its own guard and an address allow-list. The probes
 * stay on and are never guarded (a kubelet sends no credentials). Real HTTP on 127.0.0.1, single-member clusters.
 */

jest.setTimeout(30_000);

let dir: string;
let seq = 0;
const apps: HttpApp[] = [];
const solo = (extra: object = {}) => ({ nodeId: 'solo', dataDir: join(dir, `n${++seq}`), logger: quiet, ...extra });

async function start(routes: ClusterRouteOptions & object = {}, extras: Parameters<typeof startHttpApp>[2] = {}): Promise<HttpApp> {
  const [port] = await freePorts(1);
  const app = await startHttpApp(CatgaClusterModule.forRoot(solo(routes)), port!, extras);
  apps.push(app);
  return app;
}

/** GET with request headers, Host included (fetch would replace it), answering the status code. */
function get(a: HttpApp, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: a.port, path, headers, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
const statuses = (a: HttpApp, paths: readonly string[], headers?: Record<string, string>) => Promise.all(paths.map((p) => get(a, p, headers)));

const INTERNALS = ['/cluster/status', '/cluster', '/metrics'] as const;
const PROBES = ['/cluster/health/ready', '/cluster/health/live'] as const;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'catga-ops-access-'));
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.app.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('by default nothing that shows the cluster is served: status, page and metrics answer 404, the probes 200', async () => {
  const a = await start();
  expect(await statuses(a, INTERNALS)).toEqual([404, 404, 404]);
  expect(await statuses(a, PROBES)).toEqual([200, 200]);
  // The probes say up or down, with this node's id, role, term and leader: no addresses, members or traffic.
  expect(Object.keys((await a.get('/cluster/health/live')).json).sort()).toEqual(['leaderId', 'nodeId', 'role', 'status', 'term']);
});

test('true serves the conventional paths; the page alone brings the status it polls', async () => {
  const both = await start({ statusPath: true, pagePath: true, metricsPath: true });
  expect(await statuses(both, [...INTERNALS, ...PROBES])).toEqual([200, 200, 200, 200, 200]);
  const page = await start({ pagePath: true });
  expect(await statuses(page, INTERNALS)).toEqual([200, 200, 404]);
  expect((await page.get('/cluster')).text).toContain('data-status="status"');
  const status = await start({ statusPath: true });
  expect(await statuses(status, INTERNALS)).toEqual([200, 404, 404]);
});

class RefuseAll implements CanActivate {
  canActivate(): boolean {
    return false;
  }
}

test('opsGuard refusing: 403 on status, page and metrics; the probes still answer', async () => {
  const a = await start({ statusPath: true, pagePath: true, metricsPath: true, opsGuard: RefuseAll });
  expect(await statuses(a, INTERNALS)).toEqual([403, 403, 403]);
  expect(await statuses(a, PROBES)).toEqual([200, 200]);
});

test('opsGuard as instances, in order: each must admit the request', async () => {
  const seen: string[] = [];
  const token = (name: string, expected: string): CanActivate => ({
    canActivate: (ctx: ExecutionContext) => {
      seen.push(name);
      return ctx.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>().headers[`x-${name}`] === expected;
    },
  });
  const a = await start({ statusPath: true, pagePath: true, opsGuard: [token('first', 'one'), token('second', 'two')] });
  expect(await statuses(a, INTERNALS.slice(0, 2))).toEqual([403, 403]);
  expect(await statuses(a, INTERNALS.slice(0, 2), { 'x-first': 'one' })).toEqual([403, 403]);
  expect(await statuses(a, INTERNALS.slice(0, 2), { 'x-first': 'one', 'x-second': 'two' })).toEqual([200, 200]);
  seen.length = 0;
  await get(a, '/cluster/status', { 'x-first': 'one', 'x-second': 'two' });
  expect(seen).toEqual(['first', 'second']);
  await get(a, '/cluster/health/ready');
  expect(seen).toEqual(['first', 'second']); // the probes run neither
});

@Injectable()
class OpsTokens {
  readonly current = 'token-from-di';
}
@Module({ providers: [OpsTokens], exports: [OpsTokens] })
class OpsTokensModule {}

@Injectable()
class TokenGuard implements CanActivate {
  constructor(@Inject(OpsTokens) private readonly tokens: OpsTokens) {}
  canActivate(ctx: ExecutionContext): boolean {
    return ctx.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>().headers.authorization === `Bearer ${this.tokens.current}`;
  }
}

test("a guard class is built by Nest in the cluster module, with dependencies from forRootAsync's imports", async () => {
  const [port] = await freePorts(1);
  const a = await startHttpApp(
    CatgaClusterModule.forRootAsync({ imports: [OpsTokensModule], useFactory: () => solo(), statusPath: true, opsGuard: TokenGuard }),
    port!,
  );
  apps.push(a);
  expect(await get(a, '/cluster/status')).toBe(403);
  expect(await get(a, '/cluster/status', { authorization: 'Bearer wrong' })).toBe(403);
  expect(await get(a, '/cluster/status', { authorization: 'Bearer token-from-di' })).toBe(200);
});

describe('opsAllowFrom compares the client address (the app listens on 127.0.0.1)', () => {
  test.each([[['127.0.0.1']], [['loopback']], [['127.0.0.0/8']], [['10.0.0.0/8', '::ffff:127.0.0.1']]])('%j admits it', async (allow) => {
    const a = await start({ statusPath: true, pagePath: true, opsAllowFrom: allow });
    expect(await statuses(a, INTERNALS.slice(0, 2))).toEqual([200, 200]);
  });

  test('a list without it refuses 403; Host and X-Forwarded-For do not change that; the probes answer', async () => {
    const a = await start({ statusPath: true, pagePath: true, metricsPath: true, opsAllowFrom: ['10.1.2.3', '192.168.0.0/16', '::2'] });
    const r = await a.get('/cluster/status');
    expect(r.status).toBe(403);
    expect(r.json.message).toMatch(/opsAllowFrom/);
    expect(r.text).not.toContain('solo'); // nothing about the cluster in the refusal
    expect(await statuses(a, INTERNALS)).toEqual([403, 403, 403]);
    expect(await statuses(a, INTERNALS, { host: '10.1.2.3', 'x-forwarded-for': '10.1.2.3' })).toEqual([403, 403, 403]);
    expect(await statuses(a, PROBES)).toEqual([200, 200]);
  });

  test("X-Forwarded-For counts only when the app trusts its proxy (express's 'trust proxy')", async () => {
    const a = await start({ statusPath: true, opsAllowFrom: ['10.1.2.3'] });
    (a.app.getHttpAdapter().getInstance() as { set(k: string, v: unknown): void }).set('trust proxy', 'loopback');
    expect(await get(a, '/cluster/status', { 'x-forwarded-for': '10.1.2.3' })).toBe(200);
    expect(await get(a, '/cluster/status', { 'x-forwarded-for': '10.9.9.9' })).toBe(403);
  });

  test('with opsGuard too, both must admit: the allow-list first', async () => {
    const order: string[] = [];
    const guard: CanActivate = { canActivate: () => (order.push('guard'), true) };
    const refused = await start({ statusPath: true, opsAllowFrom: ['10.1.2.3'], opsGuard: guard });
    expect(await get(refused, '/cluster/status')).toBe(403);
    expect(order).toEqual([]); // refused before the app's guard ran
    const admitted = await start({ statusPath: true, opsAllowFrom: ['loopback'], opsGuard: RefuseAll });
    expect(await get(admitted, '/cluster/status')).toBe(403);
    const both = await start({ statusPath: true, opsAllowFrom: ['loopback'], opsGuard: guard });
    expect(await get(both, '/cluster/status')).toBe(200);
    expect(order).toEqual(['guard']);
  });

  test('behind a global prefix the guards go with the routes', async () => {
    const a = await start({ statusPath: true, pagePath: true, opsAllowFrom: ['10.1.2.3'] }, { prefix: 'api' });
    expect(await statuses(a, ['/api/cluster/status', '/api/cluster'])).toEqual([403, 403]);
    expect(await statuses(a, ['/api/cluster/health/ready'])).toEqual([200]);
  });
});

describe('bad access options fail at forRoot, naming the option', () => {
  class NotAGuard {}
  test.each([
    ['a number as guard', { opsGuard: 42 }, /option opsGuard: expected a guard \(a class implementing CanActivate, or an instance of one\), got 42/],
    ['a class without canActivate', { opsGuard: NotAGuard }, /option opsGuard: expected a guard .*, got function NotAGuard/],
    ['a bad entry in a list', { opsGuard: [RefuseAll, {}] }, /option opsGuard\[1\]: expected a guard .*, got \{\}/],
    ['a string, not a list', { opsAllowFrom: 'loopback' }, /option opsAllowFrom: expected a non-empty array of 'loopback', an IP address or a CIDR range/],
    ['an empty list', { opsAllowFrom: [] }, /option opsAllowFrom: expected a non-empty array/],
    ['a host name', { opsAllowFrom: ['loopback', 'localhost'] }, /option opsAllowFrom\[1\]: expected 'loopback', an IP address or a CIDR range like '10.0.0.0\/8', got "localhost"/],
    ['a prefix too long', { opsAllowFrom: ['10.0.0.0/33'] }, /option opsAllowFrom\[0\]: .*got "10.0.0.0\/33"/],
    ['a malformed range', { opsAllowFrom: ['fd00::/8/1'] }, /option opsAllowFrom\[0\]: .*got "fd00::\/8\/1"/],
    ['not a path or a boolean', { statusPath: 1 }, /option statusPath: expected a path like '\/cluster\/status' \(letters, digits, - \. _ ~ and \/\), true or false, got 1/],
  ])('%s', (_name, routes, message) => {
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(ClusterOptionsError);
    expect(() => CatgaClusterModule.forRoot(solo(routes))).toThrow(message);
  });

  test('access options returned by an async factory', async () => {
    const builder = Test.createTestingModule({ imports: [CatgaClusterModule.forRootAsync({ useFactory: () => ({ ...solo(), opsAllowFrom: ['loopback'] }) })] });
    await expect(builder.compile()).rejects.toThrow(/option opsAllowFrom: expected in forRootAsync\(\{ \.\.\. \}\) itself, not returned by useFactory/);
  });
});
