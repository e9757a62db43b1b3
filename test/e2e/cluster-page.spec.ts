import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { randomUUID } from 'node:crypto';
import { etcdHosts, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { freePorts } from '../transport/helpers';

/**
 * The /cluster live page in a real headless Chromium against the built sample (three processes; the sample opts in to
 * the page and status): it names the leader the status endpoint names, plots commits per second after writes, each
 * member's lag and the leaders over the last minutes, and after kill -9 of the leader it shows the new one and the dead
 * member as unreachable, then "no leader" once a quorum is gone; a learner that joins by seed appears in the members,
 * the lag chart and the membership history. No console errors, nothing loaded from elsewhere. Screenshots go to
 * test-artifacts/.
 */

const MAIN = resolve(__dirname, '../../dist/sample/main.js');
const ARTIFACTS = resolve(__dirname, '../../test-artifacts');
const CHROMIUM = '/usr/bin/chromium';
const HTTP = [18850, 18851, 18852];
const CLUSTER = [18853, 18854, 18855];
const ids = ['p1', 'p2', 'p3'];
const LEARNER = { http: 18856, cluster: 18857 };

jest.setTimeout(180_000);

interface Node {
  readonly id: string;
  readonly http: number;
  proc: ChildProcess | null;
  out: string;
}

interface Status {
  nodeId: string;
  leaderId: string | null;
  isLeader: boolean;
  members: { id: string; reachable: boolean | null }[];
}

async function status(n: Node): Promise<Status> {
  const r = await fetch(`http://127.0.0.1:${n.http}/cluster/status`, { signal: AbortSignal.timeout(3000) });
  return (await r.json()) as Status;
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>, context = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Debian's chromium; installed here only when missing (an npm browser download cannot work in this environment). */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  execFileSync('apt-get', ['install', '-y', 'chromium'], { stdio: 'inherit', timeout: 600_000 });
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get install -y chromium did not provide ${CHROMIUM}`);
}

/** One sample node as a process, its output kept for error messages. */
function spawnSample(n: Node, dataRoot: string, env: Record<string, string>): void {
  const proc = spawn(process.execPath, [MAIN], {
    env: { ...process.env, CATGA_NODE_ID: n.id, CATGA_DATA_DIR: join(dataRoot, n.id), CATGA_SECRET: 'page-e2e-secret', PORT: String(n.http), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (b: Buffer) => (n.out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (n.out += b.toString()));
  n.proc = proc;
}

function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

describe('the /cluster page in a browser, sample cluster of three processes', () => {
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-page-'));
  const nodes: Node[] = ids.map((id, i) => ({ id, http: HTTP[i]!, proc: null, out: '' }));
  let browser: Browser | null = null;
  const logs = () => nodes.map((n) => `--- ${n.id}\n${n.out.slice(-1500)}`).join('\n');

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
    ensureChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
    const members = ids.map((id, i) => `${id}=127.0.0.1:${CLUSTER[i]}`).join(',');
    for (const n of nodes) start(n, { CATGA_MEMBERS: members });
    browser = await launchChromium();
  });

  /** A learner that joins through p1 during the test. */
  const learner: Node = { id: 'p4', http: LEARNER.http, proc: null, out: '' };

  const start = (n: Node, env: Record<string, string>) => spawnSample(n, dataRoot, env);

  afterAll(async () => {
    await browser?.close();
    for (const n of [...nodes, learner]) n.proc?.kill('SIGKILL');
    rmSync(dataRoot, { recursive: true, force: true });
  });

  /**
   * The leader every live node agrees on, twice 1 s apart: processes that are still booting can stall long enough
   * for a leader or two to change hands right after the start.
   */
  const settledLeader = (among: Node[]) => {
    const agreed = async () => {
      const all = await Promise.all(among.map(status));
      const id = all[0]!.leaderId;
      return id && all.every((s) => s.leaderId === id) ? id : undefined;
    };
    return waitFor(
      'a settled leader all live nodes agree on',
      30_000,
      async () => {
        const first = await agreed();
        if (!first) return undefined;
        await new Promise((r) => setTimeout(r, 1000));
        return (await agreed()) === first ? nodes.find((n) => n.id === first) : undefined;
      },
      logs,
    );
  };

  const shownLeader = (page: Page) => page.locator('[data-testid=leader]').innerText();
  /** A number the page's chart `#chart-<name>` publishes as data-<attr> (points drawn, max, series, changes…). */
  const chart = async (page: Page, name: string, attr: string) => Number(await page.locator(`#chart-${name}`).getAttribute(`data-${attr}`));

  test('shows the leader, the failover after kill -9, and the loss of quorum', async () => {
    const leader = await settledLeader(nodes);
    const viewer = nodes.find((n) => n !== leader)!;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 860 } });
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (r) => !r.url().startsWith(`http://127.0.0.1:${viewer.http}/`) && foreign.push(r.url()));

    await page.goto(`http://127.0.0.1:${viewer.http}/cluster`);
    const pageState = () => `page problems: ${problems.join(' | ') || 'none'}; foreign requests: ${foreign.join(', ') || 'none'}`;
    // What the page shows against what this node's /cluster/status says, read together.
    await waitFor('the page to name the leader', 15_000, async () => {
      const [shown, s] = [await shownLeader(page), await status(viewer)];
      return shown === s.leaderId && shown === leader.id ? true : undefined;
    }, pageState);
    await waitFor('both other members reachable', 10_000, async () =>
      (await page.locator('#members tbody tr[data-reachable="true"]').count()) === 2 ? true : undefined,
    );
    expect(await page.locator(`#members tbody tr[data-member="${leader.id}"]`).getAttribute('data-role')).toBe('leader');
    expect(await page.locator(`#members tbody tr[data-member="${viewer.id}"]`).getAttribute('data-reachable')).toBe('null'); // itself
    // The sample's expireUnpaidOrders runs every 5 s on the leader; its runs come from the replicated ledger.
    await waitFor('a task run in the table', 15_000, async () => ((await page.locator('#tasks tbody tr').count()) > 0 ? true : undefined));
    for (const n of nodes) expect(await page.locator(`#members tbody tr[data-member="${n.id}"]`).getAttribute('data-membership')).toBe('voter');

    // The charts of the last minutes, drawn by the page from its own polls: writes through the sample's /kv route
    // show as commits per second (the sample's own background writes stay well below 5/s), each member gets a lag
    // line, and the leader band covers the window.
    let writes = 0;
    for (const until = Date.now() + 3000; Date.now() < until; writes++) {
      const r = await fetch(`http://127.0.0.1:${viewer.http}/kv/chart-${writes}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value: writes }),
        signal: AbortSignal.timeout(5000),
      });
      expect(r.status).toBe(200);
    }
    await waitFor('at least 5 commits/s in the chart', 10_000, async () => ((await chart(page, 'commits', 'max')) >= 5 ? true : undefined), pageState);
    expect(await chart(page, 'commits', 'points')).toBeGreaterThanOrEqual(3);
    expect(await page.locator('#chart-commits path.rate').getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+){2,}/);
    expect(await page.locator('#rate-now').innerText()).toMatch(/\/s$/);
    await waitFor('a lag line per member', 10_000, async () => ((await chart(page, 'lag', 'series')) === 3 ? true : undefined), pageState);
    expect(await page.locator('#chart-lag path[data-member]').count()).toBe(3);
    expect(await chart(page, 'lag', 'points')).toBeGreaterThanOrEqual(6);
    expect(await page.locator('#lag-legend span').count()).toBe(3);
    expect(await chart(page, 'leaders', 'segments')).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#chart-leaders rect').count()).toBeGreaterThanOrEqual(1);
    const changesBefore = await chart(page, 'leaders', 'changes');

    // A fourth node joins by seed as a learner: the members table and the membership history show it.
    start(learner, { CATGA_JOIN: `127.0.0.1:${CLUSTER[0]}`, CATGA_ADVERTISE: `127.0.0.1:${LEARNER.cluster}`, CATGA_ROLE: 'learner' });
    await waitFor('p4 shown as a learner', 20_000, async () =>
      (await page.locator('#members tbody tr[data-member="p4"]').getAttribute('data-membership').catch(() => null)) === 'learner' ? true : undefined,
    );
    await waitFor('the join in the membership history', 10_000, async () =>
      (await page.locator('#membership li').allInnerTexts()).some((t) => t.includes('p4 joined as learner')) ? true : undefined,
    );
    await waitFor('a lag line for p4', 10_000, async () => ((await page.locator('#chart-lag path[data-member="p4"]').count()) === 1 ? true : undefined));
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page.png'), fullPage: true });

    leader.proc!.kill('SIGKILL');
    const rest = nodes.filter((n) => n !== leader);
    const next = await settledLeader(rest);
    expect(next.id).not.toBe(leader.id);
    await waitFor(`the page to name the new leader ${next.id}`, 15_000, async () => {
      const [shown, s] = [await shownLeader(page), await status(viewer)];
      return shown === s.leaderId && shown === next.id ? true : undefined;
    }, pageState);
    await waitFor(`${leader.id} shown as unreachable`, 15_000, async () =>
      (await page.locator(`#members tbody tr[data-member="${leader.id}"]`).getAttribute('data-reachable')) === 'false' ? true : undefined,
    );
    // The killed leader's outbox run (a LeaderTask) was left running; the new term closes it as abandoned.
    await waitFor(`${leader.id}'s outbox run shown as abandoned`, 15_000, async () =>
      (await page.locator(`#tasks tbody tr[data-task="outbox"][data-node="${leader.id}"][data-outcome="abandoned"]`).count()) > 0 ? true : undefined,
    );
    await waitFor('the failover in the leader chart', 10_000, async () => ((await chart(page, 'leaders', 'changes')) > changesBefore ? true : undefined));
    expect(await page.locator('#chart-commits line.mark').count()).toBeGreaterThan(0);
    const history = await page.locator('#changes li').allInnerTexts();
    expect(history[0]).toContain(`${next.id} leads`);
    expect(history.some((h) => h.includes(`${leader.id} leads`))).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page-after-failover.png'), fullPage: true });

    // With two of three voters gone, no quorum is left (the learner p4 counts toward none): the page says so rather
    // than showing a stale leader.
    const second = rest.find((n) => n !== viewer)!;
    second.proc!.kill('SIGKILL');
    await waitFor('the page to show no leader', 15_000, async () => ((await shownLeader(page)) === 'No leader' ? true : undefined));
    expect(await page.locator('#banner').innerText()).toMatch(/No leader/);
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page-no-leader.png'), fullPage: true });

    expect(problems).toEqual([]);
    expect(foreign).toEqual([]);
    console.log(`cluster page: viewed on ${viewer.id}; leader ${leader.id} killed, ${next.id} took over; then ${second.id} killed; screenshots in ${ARTIFACTS}`);
  });
});

describe('the /cluster page on the etcd backend', () => {
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-page-etcd-'));
  const nodes: Node[] = ['q1', 'q2', 'q3'].map((id) => ({ id, http: 0, proc: null, out: '' }));
  let etcd: EtcdCluster | null = null;
  let browser: Browser | null = null;
  const logs = () => nodes.map((n) => `--- ${n.id}\n${n.out.slice(-1500)}`).join('\n');

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
    ensureChromium();
    etcd = await startEtcd(3);
    const ports = await freePorts(2 * nodes.length);
    nodes.forEach((n, i) => ((n as { http: number }).http = ports[i]!));
    const env = {
      CATGA_MEMBERS: nodes.map((n, i) => `${n.id}=127.0.0.1:${ports[nodes.length + i]}`).join(','),
      CATGA_ETCD_HOSTS: etcdHosts(etcd).join(','),
      CATGA_ETCD_PREFIX: `page/${randomUUID()}/`,
    };
    for (const n of nodes) spawnSample(n, dataRoot, env);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await etcd?.destroy();
    rmSync(dataRoot, { recursive: true, force: true });
  });

  test("says which backend runs and shows etcd's endpoints, its leader and the app nodes present", async () => {
    const leaderId = await waitFor(
      'the three nodes to agree on a leader',
      30_000,
      async () => {
        const all = await Promise.all(nodes.map(status));
        const id = all[0]!.leaderId;
        return id && all.every((s) => s.leaderId === id) ? id : undefined;
      },
      logs,
    );
    const viewer = nodes.find((n) => n.id !== leaderId)!;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`http://127.0.0.1:${viewer.http}/cluster`);
    await waitFor('the page to name the leader', 15_000, async () => ((await page.locator('[data-testid=leader]').innerText()) === leaderId ? true : undefined));
    expect(await page.locator('[data-testid=backend]').innerText()).toBe('etcd backend');
    await waitFor('three etcd endpoints', 15_000, async () => ((await page.locator('#etcd-endpoints tbody tr').count()) === 3 ? true : undefined));
    expect(await page.locator('#etcd').isVisible()).toBe(true);
    const endpoints = await page.locator('#etcd-endpoints tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-endpoint')));
    expect(endpoints.sort()).toEqual(etcdHosts(etcd!).sort());
    // The page shows a status up to about 2 s old (reused for 1 s, polled every second): wait for it to agree.
    const etcdLeader = await etcd!.settled();
    await waitFor(`${etcdLeader.clientUrl} shown as etcd's leader`, 10_000, async () =>
      (await page.locator(`#etcd-endpoints tbody tr[data-endpoint="${etcdLeader.clientUrl}"] td.role-leader`).count()) === 1 &&
      (await page.locator('#etcd-prefix').innerText()).includes(`etcd leader ${etcdLeader.clientUrl}`)
        ? true
        : undefined,
    );
    const present = await page.locator('#etcd-nodes tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-node')));
    expect(present).toEqual(['q1', 'q2', 'q3']);
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page-etcd.png'), fullPage: true });
    expect(problems).toEqual([]);
  });
});
