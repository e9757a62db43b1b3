/**
 * CatgaClusterModule.forTest(): a single member in memory that leads at once, reads no CATGA_* variable, writes no
 * file and opens no port, so apps in parallel Jest workers cannot collide.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ClusterCoordinator } from '../../lib/index';
import { CreateOrderCommand, GetOrderQuery } from '../../sample/orders/order.commands';
import { ordersTestApp } from './test-mode/orders-app';

jest.setTimeout(120_000);

test('leads once init returns, runs forwarded commands and queries, and ignores CATGA_* variables', async () => {
  const saved = { ...process.env };
  // Variables that would make forRoot() build a three-member cluster with a too-short secret.
  Object.assign(process.env, { CATGA_NODE_ID: 'a', CATGA_MEMBERS: 'a=127.0.0.1:1,b=127.0.0.1:2,c=127.0.0.1:3', CATGA_SECRET: 'short' });
  const cwd = process.cwd();
  const dir = mkdtempSync(join(tmpdir(), 'catga-test-mode-'));
  process.chdir(dir);
  try {
    const app = await ordersTestApp();
    const cluster = app.get(ClusterCoordinator);
    expect(cluster.isLeader).toBe(true);
    expect(cluster.members.map((m) => m.id)).toEqual(['test']);
    const order = await app.get(CommandBus).execute(new CreateOrderCommand('ada', 12));
    expect(order).toMatchObject({ id: 'o-1', customer: 'ada', createdOn: 'test' });
    expect(await app.get(QueryBus).execute(new GetOrderQuery('o-1'))).toMatchObject({ id: 'o-1', status: 'open' });
    await app.close();
    expect(readdirSync(dir)).toEqual([]); // no ./.catga
  } finally {
    process.chdir(cwd);
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two forTest() apps in two Jest workers at the same time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'catga-parallel-'));
  const report = join(dir, 'report.jsonl');
  try {
    const root = resolve(__dirname, '../..');
    const run = spawnSync(
      process.execPath,
      [join(root, 'node_modules/jest/bin/jest.js'), '--maxWorkers=2', '--testMatch', '**/test-mode/*.worker-spec.ts', '--ci'],
      { cwd: root, env: { ...process.env, CATGA_PARALLEL_REPORT: report }, encoding: 'utf8', timeout: 110_000 },
    );
    expect({ status: run.status, output: run.status === 0 ? '' : run.stderr.slice(-3000) }).toEqual({ status: 0, output: '' });
    const seen = readFileSync(report, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; pid: number; leads: boolean; order: string; startedAt: number; endedAt: number; newFiles: string[] });
    expect(seen.map((s) => s.name).sort()).toEqual(['first', 'second']);
    const [a, b] = seen as [(typeof seen)[0], (typeof seen)[0]];
    expect(a.pid).not.toBe(b.pid); // two worker processes
    expect(a.startedAt < b.endedAt && b.startedAt < a.endedAt).toBe(true); // at the same time
    for (const s of seen) expect(s).toMatchObject({ leads: true, order: 'o-1', newFiles: [] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
