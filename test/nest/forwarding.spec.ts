import { NotFoundException } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { NotLeaderException } from '../../lib/index';
import { BACKENDS, backendOptions, stopSharedEtcd } from '../support/backends';
import { CloseDay, CreateOrder, GetRanOn, OrderRejected, startCluster } from './fixtures';

jest.setTimeout(30_000);

afterAll(stopSharedEtcd);

describe.each(BACKENDS)('three Nest apps over loopback (%s backend)', (backend) => {
  let c: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    c = await startCluster(undefined, await backendOptions(backend));
  });
  afterAll(async () => {
    await c?.close();
  });

  test('a command sent to a follower runs once, on the leader, and returns its result', async () => {
    const follower = c.followers()[0]!;
    const leader = c.leader();
    const result = await follower.app.get(CommandBus).execute(new CreateOrder('o-1', 10));
    expect(result).toEqual({ orderId: 'o-1', ranOn: leader.id });
    expect(leader.journal.ran).toEqual(['o-1']);
    for (const f of c.followers()) expect(f.journal.ran).toEqual([]);
  });

  test("a handler's error comes back as its own class, with its fields", async () => {
    const follower = c.followers()[0]!;
    const bus = follower.app.get(CommandBus);
    await expect(bus.execute(new CreateOrder('o-2', 404))).rejects.toBeInstanceOf(NotFoundException);
    const err = await bus.execute(new CreateOrder('o-3', -1)).catch((e: unknown) => e);
    expect((err as Error).name).toBe('OrderRejected');
    expect((err as OrderRejected).code).toBe('NEGATIVE');
    expect((err as Error).message).toBe('amount -1 is negative');
  });

  test('@LeaderOnly runs on the leader and throws NotLeaderException naming the leader elsewhere', async () => {
    const leader = c.leader();
    await expect(leader.app.get(CommandBus).execute(new CloseDay())).resolves.toBe(leader.id);
    const follower = c.followers()[0]!;
    const err = await follower.app.get(CommandBus).execute(new CloseDay()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderException);
    expect((err as NotLeaderException).leaderId).toBe(leader.id);
  });

  test('every node runs on the chosen backend and lists the three nodes', () => {
    for (const n of c.nodes) {
      expect(n.cluster.status().backend).toBe(backend);
      expect(n.cluster.members.map((m) => m.id).sort()).toEqual(['a', 'b', 'c']);
    }
  });

  test('queries stay local', async () => {
    for (const n of c.nodes) await expect(n.app.get(QueryBus).execute(new GetRanOn())).resolves.toBe(n.id);
  });
});
