import { Injectable, Module, type BeforeApplicationShutdown } from '@nestjs/common';
import { CqrsModule, EventBus } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { createCluster } from '../../lib/cluster/create-cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator } from '../../lib/index';
import { freePorts } from '../transport/helpers';
import { BACKENDS, backendOptions, stopSharedEtcd } from '../support/backends';
import { Journal, OrderCreated, OrdersModule, startApp, startCluster } from './fixtures';
import { waitUntil } from './task-fixtures';

jest.setTimeout(60_000);

afterAll(stopSharedEtcd);

describe.each(BACKENDS)('@ClusterEvent across three Nest apps (%s backend)', (backend) => {
  let c: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    // 1,000 proposals from three apps sharing two cores with other suites: give each write room beyond 5 s.
    c = await startCluster(undefined, { requestTimeout: 30_000, ...(await backendOptions(backend)) });
  });
  afterAll(async () => {
    await c?.close();
  });

  test('1,000 events published concurrently from the three nodes arrive on all three in the identical order', async () => {
    const per = 334;
    await Promise.all(
      c.nodes.flatMap((n) => Array.from({ length: per }, (_, i) => n.app.get(EventBus).publish(new OrderCreated(`${n.id}-${i}`)))),
    );
    const total = per * c.nodes.length;
    const deadline = Date.now() + 20_000;
    while (c.nodes.some((n) => n.journal.events.length < total) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const orders = c.nodes.map((n) => n.journal.events.map((e) => e.id));
    for (const o of orders) expect(o).toHaveLength(total);
    expect(orders[1]).toEqual(orders[0]);
    expect(orders[2]).toEqual(orders[0]);
    expect(new Set(orders[0]).size).toBe(total); // each event once
    // The log index travels with each event, is the same everywhere, and increases along the order.
    const indexes = c.nodes.map((n) => n.journal.events.map((e) => e.index));
    expect(indexes[1]).toEqual(indexes[0]);
    expect(indexes[0]!.every((x, i, a) => typeof x === 'number' && (i === 0 || x > a[i - 1]!))).toBe(true);
  });

  // Regression (etcd): a publish resolved when etcd took the write, before this node's watch brought the event back,
  // so the sample's @LeaderOnly cancel handler read its own read model without the cancellation. On the leader, as a
  // handler that reads its projection after publishing needs (a follower's forwarded publish may resolve first).
  test("once publish() resolves on the leader, the leader's own handlers have the event", async () => {
    const leader = await c.settledLeader();
    for (let i = 0; i < 20; i++) {
      await leader.app.get(EventBus).publish(new OrderCreated(`own-${i}`));
      expect(leader.journal.events.map((e) => e.id)).toContain(`own-${i}`);
    }
    const total = leader.journal.events.length;
    await waitUntil(() => c.nodes.every((n) => n.journal.events.length === total), 10_000, 'every node delivering them');
  });

  test('an event class without @ClusterEvent stays local', async () => {
    class LocalOnly {}
    const before = c.nodes.map((n) => n.journal.events.length);
    await c.nodes[0]!.app.get(EventBus).publish(new LocalOnly());
    await new Promise((r) => setTimeout(r, 100));
    expect(c.nodes.map((n) => n.journal.events.length)).toEqual(before);
  });
});

// Regression: the EventBus drops its handlers in onModuleDestroy, while the node kept applying (and counting as
// delivered) events until the cluster module stopped it; those events were then lost to that node for good.
describe.each(BACKENDS)('an event committed while a node shuts down (%s backend)', (backend) => {
  let hook: (() => Promise<void>) | null = null;

  @Injectable()
  class DuringShutdown implements BeforeApplicationShutdown {
    async beforeApplicationShutdown(): Promise<void> {
      const h = hook;
      hook = null;
      if (h) await h();
    }
  }
  @Module({ providers: [DuringShutdown] })
  class ShutdownModule {}

  test('is delivered on that node after it restarts', async () => {
    const root = mkdtempSync(join(tmpdir(), 'catga-shutdown-'));
    const ids = ['a', 'b', 'c'];
    const ports = await freePorts(3);
    const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
    const quiet = { log() {}, warn() {}, error() {} };
    const chosen = await backendOptions(backend);
    const module = (id: string) =>
      CatgaClusterModule.forRoot({ nodeId: id, members, dataDir: join(root, id), secret: 'nest-test-secret', logger: quiet, ...chosen });
    const apps = await Promise.all(ids.map((id) => startApp(module(id), [ShutdownModule])));
    try {
      const clusters = apps.map((a) => a.get(ClusterCoordinator));
      await Promise.all(clusters.map((c) => c.waitForLeader({ timeout: 10_000 })));
      const leader = clusters.findIndex((c) => c.isLeader);
      const closing = [0, 1, 2].find((i) => i !== leader)!;
      const bus = apps[leader]!.get(EventBus);
      await bus.publish(new OrderCreated('before'));
      const handled = () => apps[closing]!.get(Journal).events.map((e) => e.id);
      for (let i = 0; i < 200 && !handled().includes('before'); i++) await new Promise((r) => setTimeout(r, 10));
      const seenBefore = handled();
      hook = async () => {
        // Every onModuleDestroy has run (the bus has no handlers left); the cluster module has not stopped yet.
        const last = (await bus.publish(new OrderCreated('during'))) as unknown as { index: number };
        for (let i = 0; i < 100 && clusters[closing]!.status().appliedIndex < last.index; i++) await new Promise((r) => setTimeout(r, 5));
      };
      await apps[closing]!.close();
      apps[closing] = await startApp(module(ids[closing]!), [ShutdownModule]);
      for (let i = 0; i < 300 && !handled().includes('during'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(seenBefore).toContain('before');
      expect(handled()).toContain('during');
    } finally {
      await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// Nest bootstraps modules in import order: with the cluster module first, its bootstrap (which waits for a leader)
// ran before the CqrsModule registered the event handlers, and deliveries made meanwhile reached no handler.
test('events committed before the app started reach the handlers whichever module is imported first', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'catga-order-'));
  const quiet = { log() {}, warn() {}, error() {} };
  try {
    const bare = await createCluster({ nodeId: 'solo', dataDir, logger: quiet });
    for (let i = 1; i <= 3; i++) await bare.publishEvent('OrderCreated', { orderId: `early-${i}` });
    await bare.stop();
    const ref = await Test.createTestingModule({
      imports: [CatgaClusterModule.forRoot({ nodeId: 'solo', dataDir, logger: quiet }), CqrsModule.forRoot(), OrdersModule],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    try {
      const journal = app.get(Journal);
      for (let i = 0; i < 200 && journal.events.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(journal.events.map((e) => e.id)).toEqual(['early-1', 'early-2', 'early-3']);
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
