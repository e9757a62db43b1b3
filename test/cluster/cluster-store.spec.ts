/** cluster.store hands out copies: a caller changing what it read changes nothing on the replica (regression). */
import { startMemCluster } from './mem-cluster.js';

jest.setTimeout(30_000);

test('mutating the value store.get returned does not change the replica or what others read', async () => {
  const c = await startMemCluster();
  try {
    const leader = await c.leader();
    const follower = c.ids.find((i) => i !== leader)!;
    await c.node(leader).store.put('cart', { items: ['apple'], meta: { n: 1 } });
    const read = await c.node(follower).store.get<{ items: string[]; meta: { n: number } }>('cart', { consistency: 'linearizable' });
    read!.value.items.push('stolen');
    read!.value.meta.n = 99;
    const again = await c.node(follower).store.get('cart');
    expect(again!.value).toEqual({ items: ['apple'], meta: { n: 1 } });
    const onLeader = await c.node(leader).store.get('cart');
    expect(onLeader!.value).toEqual(again!.value);
  } finally {
    await c.stop();
  }
});
