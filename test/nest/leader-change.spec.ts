import { CommandBus } from '@nestjs/cqrs';
import { BACKENDS, backendOptions, stopSharedEtcd } from '../support/backends';
import { CreateOrder, startCluster } from './fixtures';

jest.setTimeout(60_000);

afterAll(stopSharedEtcd);

test.each(BACKENDS)('%s backend: a leader change in the middle of a stream of forwarded commands: each returns or fails clearly, none runs twice', async (backend) => {
  const c = await startCluster(undefined, await backendOptions(backend));
  try {
    const follower = c.followers()[0]!;
    const bus = follower.app.get(CommandBus);
    const outcomes: { id: string; ok: boolean; error?: string }[] = [];
    let n = 0;
    const stream = (async () => {
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        const batch = Array.from({ length: 8 }, () => `cmd-${++n}`);
        await Promise.all(
          batch.map((id) =>
            bus.execute(new CreateOrder(id, 1)).then(
              () => outcomes.push({ id, ok: true }),
              (e: Error) => outcomes.push({ id, ok: false, error: `${e.name}: ${e.message}` }),
            ),
          ),
        );
        // Yield to timers and I/O as a server between requests would; commands that run locally resolve as
        // microtasks only and would otherwise starve every timer in this process (the other two apps' included).
        await new Promise((r) => setImmediate(r));
      }
    })();
    // Move leadership twice while commands are flowing.
    await new Promise((r) => setTimeout(r, 500));
    await (await c.settledLeader()).cluster.transferLeadership();
    await new Promise((r) => setTimeout(r, 500));
    await (await c.settledLeader()).cluster.transferLeadership();
    await stream;

    const ran = c.nodes.flatMap((x) => x.journal.ran).filter((id) => id.startsWith('cmd-'));
    // None ran twice, anywhere.
    expect(ran.length).toBe(new Set(ran).size);
    // Every command that returned successfully ran exactly once.
    const ranSet = new Set(ran);
    for (const o of outcomes.filter((x) => x.ok)) expect(ranSet.has(o.id)).toBe(true);
    // Failures are rare and say what happened.
    for (const o of outcomes.filter((x) => !x.ok)) expect(o.error).toMatch(/leader|answer/i);
    expect(outcomes.filter((x) => x.ok).length).toBeGreaterThan(outcomes.length * 0.9);
    expect(outcomes.length).toBeGreaterThan(50);
  } finally {
    await c.close();
  }
});
