import { EventBus } from '@nestjs/cqrs';
import { OrderCreated, startCluster } from './fixtures';

jest.setTimeout(60_000);

describe('@ClusterEvent across three Nest apps', () => {
  let c: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    // 1,000 proposals from three apps sharing two cores with other suites: give each write room beyond 5 s.
    c = await startCluster(undefined, { requestTimeout: 30_000 });
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

  test('an event class without @ClusterEvent stays local', async () => {
    class LocalOnly {}
    const before = c.nodes.map((n) => n.journal.events.length);
    await c.nodes[0]!.app.get(EventBus).publish(new LocalOnly());
    await new Promise((r) => setTimeout(r, 100));
    expect(c.nodes.map((n) => n.journal.events.length)).toEqual(before);
  });
});
