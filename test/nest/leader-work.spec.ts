/**
 * The leader-work guarantees as a Nest app sees them, with three apps in this process over loopback: a handler's own
 * cluster error reaches the caller once and at once, @LeaderOnly keeps working after a failed transfer, a scheduled
 * singleton body gets its run (signal and fencing token), a LeaderTask stops the moment a transfer starts, and a node
 * that fell behind the event retention is told so on its EventBus.
 */
import { Injectable, Module } from '@nestjs/common';
import { Command, CommandBus, CommandHandler, CqrsModule, EventsHandler, type ICommandHandler, type IEventHandler } from '@nestjs/cqrs';
import { Interval } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster } from '../../lib/cluster/create-cluster';
import {
  CatgaClusterModule,
  ClusterCoordinator,
  ClusterEvent,
  ClusterEventsMissed,
  ForwardToLeader,
  NotLeaderException,
  SingletonTask,
  type LeaderTask,
  type TaskRunContext,
} from '../../lib/index';
import { CloseDay, startCluster } from './fixtures';
import { startTaskCluster, waitUntil } from './task-fixtures';

jest.setTimeout(60_000);
const quiet = { log() {}, warn() {}, error() {} };

/** Every run of Charge's body, on any app of this process: the side effect that must happen once. */
const charges: string[] = [];
let chargeThen: (cluster: ClusterCoordinator, cmd: Charge) => Promise<void> = async () => undefined;

class Charge extends Command<string> {
  constructor(readonly orderId: string) {
    super();
  }
}

@CommandHandler(Charge)
@ForwardToLeader()
class ChargeHandler implements ICommandHandler<Charge> {
  constructor(private readonly cluster: ClusterCoordinator) {}
  async execute(cmd: Charge) {
    charges.push(`${cmd.orderId}@${this.cluster.nodeId}`);
    await chargeThen(this.cluster, cmd);
    return this.cluster.nodeId;
  }
}

@Module({ providers: [ChargeHandler] })
class ChargeModule {}

describe('@ForwardToLeader: a handler that throws a cluster error', () => {
  let c: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    c = await startCluster(undefined, {}, [ChargeModule]);
  });
  afterAll(async () => {
    await c?.close();
  });

  test('its own NotLeaderException comes back at once, and it ran once', async () => {
    charges.length = 0;
    chargeThen = async () => {
      throw new NotLeaderException('', 'a downstream leader-only step refused');
    };
    const leader = await c.settledLeader();
    const caller = c.nodes.find((n) => n.id !== leader.id)!;
    const t0 = Date.now();
    const err = await caller.app.get(CommandBus).execute(new Charge('o-1')).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NotLeaderException);
    expect((err as Error).message).toBe('a downstream leader-only step refused');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(charges).toHaveLength(1);
  });

  test('it moved leadership, then failed: it ran once, on the old leader, and the caller gets the error', async () => {
    charges.length = 0;
    const leader = await c.settledLeader();
    const [caller, third] = c.nodes.filter((n) => n.id !== leader.id);
    chargeThen = async (cluster) => {
      await cluster.transferLeadership(third!.id);
      await cluster.confirmLeadership();
    };
    const err = await caller!.app.get(CommandBus).execute(new Charge('o-2')).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NotLeaderException);
    expect(charges).toEqual([`o-2@${leader.id}`]);
  });
});

test('@LeaderOnly works on the leader again after a transfer towards a stopped member failed', async () => {
  const c = await startCluster();
  try {
    const leader = await c.settledLeader();
    const down = c.nodes.find((n) => n.id !== leader.id)!;
    await down.app.close();
    await expect(leader.cluster.transferLeadership(down.id)).rejects.toThrow(/did not move/);
    await waitUntil(() => leader.cluster.hasLease(), 3000, 'the lease to come back');
    await expect(leader.app.get(CommandBus).execute(new CloseDay())).resolves.toBe(leader.id);
  } finally {
    await c.close();
  }
});

const runs: { node: string; run: TaskRunContext }[] = [];

@Injectable()
class FencedJob {
  constructor(private readonly cluster: ClusterCoordinator) {}

  @Interval(50)
  @SingletonTask({ name: 'fenced' })
  tick(run: TaskRunContext) {
    runs.push({ node: this.cluster.nodeId, run });
  }
}

const leaderTaskSignals: AbortSignal[] = [];

@SingletonTask('watcher')
@Injectable()
class Watcher implements LeaderTask {
  async run(signal: AbortSignal, run: TaskRunContext): Promise<void> {
    expect(run.signal.aborted).toBe(false);
    leaderTaskSignals.push(signal);
    await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  }
}

test('a scheduled body gets its run: the leader signal and a token that grows with every fire', async () => {
  runs.length = 0;
  const c = await startTaskCluster(undefined, [FencedJob]);
  try {
    await waitUntil(() => runs.length >= 5, 5000, 'five fires');
    const leader = await c.waitLeader();
    const recent = runs.slice(-4);
    for (const r of recent) {
      expect(r.node).toBe(leader.id);
      expect(r.run.task).toBe('fenced');
      expect(r.run.signal).toBeInstanceOf(AbortSignal);
      expect(r.run.signal.aborted).toBe(false);
    }
    const tokens = runs.map((r) => r.run.token);
    expect(tokens.every((t, i) => i === 0 || t > tokens[i - 1]!)).toBe(true);
    expect(leader.cluster.tasks.runs('fenced').find((r) => r.fireTime === recent[3]!.run.fireTime)?.token).toBe(recent[3]!.run.token);
  } finally {
    await c.closeAll();
  }
});

test('a LeaderTask stops the moment its leader sends TimeoutNow, inside transferLeadership() on an idle log', async () => {
  const c = await startTaskCluster(undefined, [Watcher]);
  try {
    await waitUntil(() => leaderTaskSignals.some((s) => !s.aborted), 3000, 'the leader task');
    const running = leaderTaskSignals.filter((s) => !s.aborted);
    const holder = c.live().find((n) => n.cluster.hasLease())!;
    const moving = holder.cluster.transferLeadership();
    expect(running.length).toBe(1);
    expect(running[0]!.aborted).toBe(true);
    await moving;
  } finally {
    await c.closeAll();
  }
});

@ClusterEvent()
class Shipped {
  constructor(readonly orderId: string) {}
}

const seen: string[] = [];

@EventsHandler(Shipped, ClusterEventsMissed)
class ShippedHandler implements IEventHandler<Shipped | ClusterEventsMissed> {
  handle(e: Shipped | ClusterEventsMissed) {
    seen.push(e instanceof ClusterEventsMissed ? `missed ${e.after}..${e.upTo}` : e.orderId);
  }
}

test('a node that fell behind the event retention gets ClusterEventsMissed on its EventBus, then the kept events', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'catga-missed-'));
  try {
    // Five events committed while no application was there to take them (the cursor stays at 0), then compacted into
    // a snapshot that keeps only the newest two: the first three are gone from the log and from the retention.
    const options = { nodeId: 'solo', dataDir, eventRetention: 2, compactionThreshold: 1, logger: quiet };
    const bare = await createCluster(options);
    const indexes: number[] = [];
    for (let i = 1; i <= 5; i++) indexes.push((await bare.publishEvent('Shipped', { orderId: `s${i}` })).index);
    await waitUntil(() => bare.status().snapshotIndex >= indexes[4]!, 3000, 'a snapshot holding every event');
    await bare.stop();

    @Module({ providers: [ShippedHandler] })
    class Handlers {}
    const ref = await Test.createTestingModule({
      imports: [CqrsModule.forRoot(), CatgaClusterModule.forRoot(options), Handlers],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    try {
      await waitUntil(() => seen.length >= 3, 3000, 'the notice and the kept events');
      expect(seen).toEqual([`missed 0..${indexes[2]}`, 's4', 's5']);
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
