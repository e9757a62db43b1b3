import { startMemCluster } from './mem-cluster.js';

jest.setTimeout(30_000);
const big = (kb: number): string => 'x'.repeat(kb * 1024);

test('past 1 MiB of image, a snapshot waits for compactionThreshold entries and for as many bytes of log as the image', async () => {
  // Megabyte snapshots on a loaded machine can stall this process past an election: writes get time to ride one out.
  const c = await startMemCluster({ compactionThreshold: 5, requestTimeoutMs: 5000 });
  try {
    const leader = c.node(await c.leader());
    const snapshotAt = () => leader.runtime.status().snapshotIndex;
    await leader.store.put('big', big(1200)); // past the 1 MiB below which the entry count alone decides
    for (let i = 0; i < 6; i++) await leader.store.put(`small${i}`, i);
    // The first snapshot has no image to weigh against: the entry count alone starts it.
    await c.until('a first snapshot holding the 1.2 MB value', () => snapshotAt() > 0);
    const first = snapshotAt();
    // 60 small writes are far past the entry count but far below the image's size: no new snapshot.
    for (let i = 0; i < 60; i++) await leader.store.put(`small${i}`, i);
    await new Promise((r) => setTimeout(r, 50));
    expect(snapshotAt()).toBe(first);
    // Once the log has caught up with the image in bytes, the next snapshot comes.
    await leader.store.put('big2', big(700));
    await leader.store.put('big3', big(700));
    await leader.store.put('after', 1);
    await c.until('a second snapshot', () => snapshotAt() > first);
  } finally {
    await c.stop();
  }
});
