import { appendFileSync, readdirSync } from 'node:fs';
import { CommandBus } from '@nestjs/cqrs';
import { ClusterCoordinator } from '../../../lib/index';
import { CreateOrderCommand } from '../../../sample/orders/order.commands';
import { ordersTestApp } from './orders-app';

/**
 * The body of the two worker specs that test/nest/test-mode.spec.ts runs in two Jest workers at once: each starts a
 * forTest() app, holds it while the other runs, and appends what it saw to CATGA_PARALLEL_REPORT.
 */
export function parallelWorkerTest(name: string): void {
  test(`${name}: a forTest() app leads, runs a forwarded command, and writes no file`, async () => {
    const report = process.env.CATGA_PARALLEL_REPORT;
    if (!report) throw new Error('run through test/nest/test-mode.spec.ts (CATGA_PARALLEL_REPORT is not set)');
    const before = readdirSync(process.cwd()).sort();
    const startedAt = Date.now();
    const app = await ordersTestApp();
    const cluster = app.get(ClusterCoordinator);
    const leads = cluster.isLeader;
    const order = await app.get(CommandBus).execute(new CreateOrderCommand(name, 5));
    await new Promise((r) => setTimeout(r, 1500)); // overlap with the other worker
    await app.close();
    const after = readdirSync(process.cwd()).sort();
    appendFileSync(
      report,
      `${JSON.stringify({ name, pid: process.pid, worker: process.env.JEST_WORKER_ID, leads, order: order.id, startedAt, endedAt: Date.now(), newFiles: after.filter((f) => !before.includes(f)) })}\n`,
    );
  });
}
