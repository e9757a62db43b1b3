import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BACKENDS, backendOptions, failoverMs, stopSharedEtcd } from '../support/backends';
import { freePorts } from '../transport/helpers';

/**
 * The sample app as three real processes (what `npm run sample` starts), driven over HTTP: forwarded commands,
 * @LeaderOnly, cluster events building every node's read model in the same order, and failover after kill -9.
 */
const MAIN = resolve(__dirname, '../../dist/sample/main.js');
const ids = ['s1', 's2', 's3'];

jest.setTimeout(60_000);

afterAll(stopSharedEtcd);

interface Node {
  id: string;
  http: number;
  proc: ChildProcess | null;
  out: string;
}

async function call(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// The sample runs unchanged on etcd: only CATGA_ETCD_HOSTS (and a prefix of its own) is added to its environment.
describe.each(BACKENDS)('the sample app, three processes (%s backend)', (backend) => {
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-sample-'));
  const nodes: Node[] = ids.map((id) => ({ id, http: 0, proc: null, out: '' }));
  const HTTP: number[] = [];
  let members = '';
  let backendEnv: Record<string, string> = {};

  const start = (n: Node) => {
    const proc = spawn(process.execPath, [MAIN], {
      env: { ...process.env, ...backendEnv, SAMPLE_PAYMENT_WINDOW_MS: '2000', CATGA_NODE_ID: n.id, CATGA_MEMBERS: members, CATGA_DATA_DIR: join(dataRoot, n.id), CATGA_SECRET: 'sample-e2e-secret', PORT: String(n.http) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (b: Buffer) => (n.out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (n.out += b.toString()));
    n.proc = proc;
  };

  const status = async (n: Node) => (await call(n.http, 'GET', '/cluster/status')).json as { leaderId: string; isLeader: boolean };

  const leader = async (among = nodes): Promise<Node> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      for (const n of among) {
        const s = await status(n).catch(() => null);
        if (s?.isLeader) return n;
      }
      if (Date.now() > deadline) throw new Error(`no leader:\n${among.map((n) => n.out.slice(-2000)).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
    const ports = await freePorts(2 * ids.length);
    nodes.forEach((n, i) => (n.http = HTTP[i] = ports[i]!));
    members = ids.map((id, i) => `${id}=127.0.0.1:${ports[ids.length + i]}`).join(',');
    const chosen = (await backendOptions(backend)).backend;
    if (chosen) backendEnv = { CATGA_ETCD_HOSTS: chosen.hosts.join(','), CATGA_ETCD_PREFIX: chosen.prefix };
    nodes.forEach(start);
    // Every node's HTTP port answers and all agree on one leader (startup on a busy machine may elect more than once).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const seen = await Promise.all(nodes.map((n) => status(n).catch(() => null)));
      const leaders = new Set(seen.map((s) => s?.leaderId));
      if (seen.every((s) => s?.leaderId) && leaders.size === 1) break;
      if (Date.now() > deadline) throw new Error(`the sample did not settle:\n${nodes.map((n) => n.out.slice(-2000)).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(() => {
    for (const n of nodes) n.proc?.kill('SIGKILL');
    rmSync(dataRoot, { recursive: true, force: true });
  });

  test('an order sent to a follower is created by the leader and readable on every node', async () => {
    const L = await leader();
    const F = nodes.find((n) => n !== L)!;
    const created = await call(F.http, 'POST', '/orders', { customer: 'ada', amount: 42 });
    expect(created.status).toBe(201);
    expect(created.json.createdOn).toBe(L.id);
    for (const n of nodes) {
      let got = await call(n.http, 'GET', `/orders/${created.json.id}`);
      for (let i = 0; got.status === 404 && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 20));
        got = await call(n.http, 'GET', `/orders/${created.json.id}`);
      }
      expect(got.json).toMatchObject({ id: created.json.id, customer: 'ada', amount: 42, eventIndex: created.json.eventIndex });
    }
  });

  test('a validation error from the leader comes back as a 400 on the follower', async () => {
    const L = await leader();
    const F = nodes.find((n) => n !== L)!;
    const r = await call(F.http, 'POST', '/orders', { customer: '', amount: 1 });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/customer/);
  });

  test('@LeaderOnly cancel answers 421 naming the leader on a follower, and works on the leader', async () => {
    const L = await leader();
    const F = nodes.find((n) => n !== L)!;
    const { json: order } = await call(F.http, 'POST', '/orders', { customer: 'bob', amount: 7 });
    const refused = await call(F.http, 'POST', `/orders/${order.id}/cancel`);
    expect(refused.status).toBe(421);
    expect(refused.json).toMatchObject({ code: 'NOT_LEADER', leaderId: L.id });
    const ok = await call(L.http, 'POST', `/orders/${order.id}/cancel`);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ status: 'cancelled', cancelReason: 'customer' });
  });

  const eventually = async <T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const mentions = (id: string, pattern: (id: string) => string) => nodes.map((n) => (n.out.match(new RegExp(pattern(id), 'g')) ?? []).length);

  test('the @Cron + @SingletonTask job cancels an unpaid order once, on one node; a paid order stays paid', async () => {
    const { json: unpaid } = await call(HTTP[1]!, 'POST', '/orders', { customer: 'dee', amount: 3 });
    const { json: paid } = await call(HTTP[2]!, 'POST', '/orders', { customer: 'eve', amount: 4 });
    expect((await call(HTTP[0]!, 'POST', `/orders/${paid.id}/pay`)).json.status).toBe('paid');
    // Payment window 2 s, cron every 5 s: cancelled within ~7 s.
    for (const n of nodes) {
      const o = await eventually(`${unpaid.id} cancelled on ${n.id}`, 10_000, async () => {
        const r = await call(n.http, 'GET', `/orders/${unpaid.id}`);
        return r.json?.status === 'cancelled' ? r.json : undefined;
      });
      expect(o.cancelReason).toBe('unpaid');
      expect((await call(n.http, 'GET', `/orders/${paid.id}`)).json.status).toBe('paid');
    }
    const cancelledBy = mentions(unpaid.id, (id) => `cancelled \\d+ unpaid order\\(s\\):[^\\n]*\\b${id}\\b`);
    expect(cancelledBy.reduce((a, b) => a + b, 0)).toBe(1);
    expect((await call(HTTP[0]!, 'POST', `/orders/${unpaid.id}/pay`)).status).toBe(409);
  });

  test('the OutboxProcessor LeaderTask sends each confirmation once, from the leader', async () => {
    const L = await leader();
    const { json: order } = await call(HTTP[0]!, 'POST', '/orders', { customer: 'fay', amount: 5 });
    await eventually(`the confirmation for ${order.id}`, 5000, async () =>
      mentions(order.id, (id) => `confirmation for ${id} `).some((c) => c > 0) || undefined,
    );
    await new Promise((r) => setTimeout(r, 1500)); // another scan on the leader must not send it again
    expect(mentions(order.id, (id) => `confirmation for ${id} `)).toEqual(nodes.map((n) => (n === L ? 1 : 0)));
  });

  test('sales reports from three nodes at once: the DistributedLock lets one through at a time, tokens increase', async () => {
    const results = await Promise.all(nodes.map((n) => call(n.http, 'POST', '/reports/sales')));
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    const made = results.filter((r) => r.status === 201).map((r) => r.json);
    expect(made.length).toBeGreaterThan(0);
    const again = await call(HTTP[2]!, 'POST', '/reports/sales');
    expect(again.status).toBe(201);
    expect(again.json.token).toBeGreaterThan(Math.max(...made.map((m) => m.token)));
    for (const n of nodes) expect((await call(n.http, 'GET', '/reports/sales')).json).toEqual(again.json);
  });

  test('kv API: put, linearizable get on another node, cas conflict, delete', async () => {
    expect((await call(HTTP[0]!, 'PUT', '/kv/colour', { value: 'blue' })).json).toEqual({ version: 1 });
    expect((await call(HTTP[2]!, 'GET', '/kv/colour?consistency=linearizable')).json).toEqual({ value: 'blue', version: 1 });
    const conflict = await call(HTTP[1]!, 'POST', '/kv/colour/cas', { expectedVersion: 0, value: 'red' });
    expect(conflict).toEqual({ status: 409, json: { ok: false, version: 1 } });
    expect((await call(HTTP[1]!, 'POST', '/kv/colour/cas', { expectedVersion: 1, value: 'red' })).json).toEqual({ ok: true, version: 2 });
    expect((await call(HTTP[2]!, 'DELETE', '/kv/colour')).status).toBe(200);
    expect((await call(HTTP[0]!, 'GET', '/kv/colour')).status).toBe(404);
  });

  test('after kill -9 of the leader, another node leads and orders continue from the same counter', async () => {
    const L = await leader();
    const before = await call(L.http, 'POST', '/orders', { customer: 'cy', amount: 1 });
    L.proc!.kill('SIGKILL');
    const t0 = Date.now();
    const survivors = nodes.filter((n) => n !== L);
    let after: { status: number; json: any } | null = null;
    // On etcd, the dead leader's session lease must run out, and its successor waits a TTL more (docs/etcd.md).
    const failover = failoverMs(backend);
    while (Date.now() - t0 < failover + 2000) {
      after = await call(survivors[0]!.http, 'POST', '/orders', { customer: 'cy', amount: 2 }).catch(() => null);
      if (after?.status === 201) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(after?.status).toBe(201);
    expect(Date.now() - t0).toBeLessThan(failover);
    expect(Number(after!.json.id.slice(2))).toBe(Number(before.json.id.slice(2)) + 1);
    expect(survivors.map((n) => n.id)).toContain(after!.json.createdOn);
  });
});
