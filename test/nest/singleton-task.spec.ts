import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { Cron, Interval, Timeout } from '@nestjs/schedule';
import { ClusterCoordinator, SingletonTask, type LeaderTask } from '../../lib/index';
import {
  SCHEDULER_TYPE,
  SCHEDULER_TYPE_CRON,
  SCHEDULER_TYPE_INTERVAL,
  SCHEDULER_TYPE_TIMEOUT,
  SCHEDULE_CRON_OPTIONS,
  SCHEDULE_INTERVAL_OPTIONS,
  fixedCronPeriod,
} from '../../lib/nest/decorators/schedule-metadata';
import { singletonMethodOf } from '../../lib/nest/decorators/singleton-task.decorator';
import {
  CronTasks,
  IntervalTasks,
  LongTask,
  TaskJournal,
  sleep,
  type TaskNode,
  startTaskApp,
  startTaskCluster,
  tempDir,
  waitUntil,
} from './task-fixtures';
import { BACKENDS, backendOptions, failoverMs, stopSharedEtcd } from '../support/backends';

jest.setTimeout(30_000);

afterAll(stopSharedEtcd);

type Fire = TaskJournal['fires'][number];
type Run = TaskJournal['runs'][number];

/**
 * Every body run of the task since `t0` (the journal, all nodes) matches one started run in the ledger, whose fire
 * times are distinct by construction: no fire time ran twice, here or on another node. A run is recorded a moment
 * before its body runs, so one at each end of the window may count on one side only.
 */
function expectOneRunPerFire(fires: Fire[], node: TaskNode, task: string, label: string, t0: number) {
  const t1 = Date.now();
  const ran = fires.filter((f) => f.task === label && f.at >= t0 && f.at <= t1).length;
  const started = node.cluster.tasks.runs(task).filter((r) => r.start >= t0 && r.start <= t1).length;
  expect(Math.abs(ran - started)).toBeLessThanOrEqual(1);
}

function expectNoOverlap(runs: Run[]) {
  const sorted = [...runs].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    expect(prev.stop).not.toBeNull();
    expect(prev.stop!).toBeLessThanOrEqual(sorted[i]!.start);
  }
}

test('the mirrored @nestjs/schedule metadata matches, and both decorator orders keep it on the wrapper', () => {
  class Plain {
    @Cron('* * * * * *') c() {}
    @Interval(7) i() {}
    @Timeout(7) t() {}
  }
  const type = (fn: object) => Reflect.getMetadata(SCHEDULER_TYPE, fn) as unknown;
  expect([type(Plain.prototype.c), type(Plain.prototype.t), type(Plain.prototype.i)]).toEqual([
    SCHEDULER_TYPE_CRON,
    SCHEDULER_TYPE_TIMEOUT,
    SCHEDULER_TYPE_INTERVAL,
  ]);
  expect(Reflect.getMetadata(SCHEDULE_INTERVAL_OPTIONS, Plain.prototype.i)).toEqual({ timeout: 7 });
  expect(Reflect.getMetadata(SCHEDULE_CRON_OPTIONS, Plain.prototype.c)).toMatchObject({ cronTime: '* * * * * *' });
  for (const fn of [IntervalTasks.prototype.scheduleFirst, IntervalTasks.prototype.singletonFirst]) {
    expect(singletonMethodOf(fn)).toBeDefined();
    expect(type(fn)).toBe(SCHEDULER_TYPE_INTERVAL);
    expect(Reflect.getMetadata(SCHEDULE_INTERVAL_OPTIONS, fn)).toEqual({ timeout: 100 });
  }
  expect(singletonMethodOf(IntervalTasks.prototype.singletonFirst)!.name).toBe('singleton-first');
  expect(singletonMethodOf(IntervalTasks.prototype.scheduleFirst)!.name).toBe('IntervalTasks.scheduleFirst');
  expect(Reflect.getMetadata('SCHEDULE_CRON_OPTIONS', CronTasks.prototype.everySecond)).toMatchObject({ cronTime: '* * * * * *' });
  expect([fixedCronPeriod('* * * * * *'), fixedCronPeriod('*/5 * * * * *'), fixedCronPeriod('*/1 * * * *'), fixedCronPeriod('0 0 * * * *')]).toEqual([
    1000, 5000, 60_000, 3_600_000,
  ]);
  expect([fixedCronPeriod('0 0-23/1 * * *'), fixedCronPeriod('*/7 * * * * *'), fixedCronPeriod('0 0 12 * * 1')]).toEqual([undefined, undefined, undefined]);
});

describe.each(BACKENDS)('@SingletonTask across three Nest apps (%s backend)', (backend) => {
  let c: Awaited<ReturnType<typeof startTaskCluster>>;
  beforeAll(async () => {
    c = await startTaskCluster(undefined, [IntervalTasks, LongTask], await backendOptions(backend));
  });
  afterAll(async () => {
    await c?.closeAll();
  });

  test('each @Interval fire runs on exactly one node, the leader, in either decorator order; runs are in the ledger', async () => {
    const leader = await c.waitLeader();
    const t0 = Date.now();
    await sleep(1200);
    const fires = c.journal.fires.filter((f) => f.at >= t0);
    for (const task of ['scheduleFirst', 'singleton-first']) {
      const mine = fires.filter((f) => f.task === task);
      expect(mine.length).toBeGreaterThanOrEqual(6);
      expect(new Set(mine.map((f) => f.node))).toEqual(new Set([leader.id]));
    }
    expectOneRunPerFire(c.journal.fires, leader, 'IntervalTasks.scheduleFirst', 'scheduleFirst', t0);
    expectOneRunPerFire(c.journal.fires, leader, 'singleton-first', 'singleton-first', t0);
    // Every node's ledger copy shows the runs, recorded by the leader, distinct fire times in slots of 100 ms.
    await sleep(100);
    const runs = c.nodes.map((n) => n.cluster.tasks.runs('IntervalTasks.scheduleFirst').filter((r) => r.start >= t0 - 5 && r.outcome === 'ok'));
    expect(runs[0]!.length).toBeGreaterThanOrEqual(6);
    for (const r of runs[0]!) {
      expect(r.node).toBe(leader.id);
      expect(r.fireTime % 100).toBe(0);
      expect(r.term).toBe(leader.cluster.term);
    }
    expect(new Set(runs[0]!.map((r) => r.fireTime)).size).toBe(runs[0]!.length);
    // The LeaderTask runs on the leader only.
    expect(c.journal.runs.filter((r) => r.stop === null).map((r) => r.node)).toEqual([leader.id]);
  });

  test('a LeaderTask is aborted by a leadership transfer and started on the new leader, never overlapping', async () => {
    const old = await c.waitLeader();
    await waitUntil(() => c.journal.runs.some((r) => r.node === old.id && r.stop === null), 3000, 'the run on the leader');
    await old.cluster.transferLeadership();
    const next = await c.waitLeader();
    expect(next.id).not.toBe(old.id);
    await waitUntil(() => c.journal.runs.some((r) => r.node === next.id && r.stop === null), 3000, 'the run on the new leader');
    expect(c.journal.runs.filter((r) => r.node === old.id).every((r) => r.stop !== null)).toBe(true);
    expectNoOverlap(c.journal.runs);
    // Scheduled fires follow the leadership.
    const t0 = Date.now();
    await sleep(400);
    expect(new Set(c.journal.fires.filter((f) => f.at >= t0).map((f) => f.node))).toEqual(new Set([next.id]));
    const ledger = next.cluster.tasks.runs('long');
    expect(ledger.filter((r) => r.outcome === 'running').map((r) => r.node)).toEqual([next.id]);
  });

  test('after the leader stops abruptly, the next fires and the LeaderTask run on the new leader', async () => {
    const old = await c.waitLeader();
    await c.crash(old);
    const crashedAt = Date.now();
    const next = await c.waitLeader(failoverMs(backend));
    expect(next.id).not.toBe(old.id);
    await waitUntil(() => c.journal.runs.some((r) => r.node === next.id && r.start >= crashedAt && r.stop === null), 3000, 'the run on the new leader');
    const t0 = Date.now();
    await sleep(500);
    const fires = c.journal.fires.filter((f) => f.at >= t0);
    expect(fires.length).toBeGreaterThanOrEqual(6);
    expect(new Set(fires.map((f) => f.node))).toEqual(new Set([next.id]));
    expectOneRunPerFire(c.journal.fires, next, 'IntervalTasks.scheduleFirst', 'scheduleFirst', t0);
    expectNoOverlap(c.journal.runs);
  });
});

test.each(BACKENDS)('%s backend: @Cron every second over ~3 s: each second runs once, on the leader', async (backend) => {
  const c = await startTaskCluster(undefined, [CronTasks], await backendOptions(backend));
  try {
    await c.waitLeader();
    const t0 = Date.now();
    await sleep(3200);
    const fires = c.journal.fires.filter((f) => f.at >= t0);
    expect(fires.length).toBeGreaterThanOrEqual(2);
    const seconds = fires.map((f) => Math.round(f.at / 1000));
    expect(new Set(seconds).size).toBe(seconds.length);
    // Leadership may move under a loaded machine, so "the leader" is read per fire from the ledger: each fire's run
    // was started by a committed entry of its node's term, and one term has one leader.
    const leader = await c.waitLeader();
    const runs = leader.cluster.tasks.runs('CronTasks.everySecond');
    expect(runs.every((r) => r.fireTime % 1000 === 0)).toBe(true);
    const leaderOfTerm = new Map<number, string>();
    for (const r of runs) {
      expect(leaderOfTerm.get(r.term) ?? r.node).toBe(r.node);
      leaderOfTerm.set(r.term, r.node);
    }
    for (const f of fires) {
      const run = runs.find((r) => r.fireTime === Math.round(f.at / 1000) * 1000);
      expect(run?.node).toBe(f.node);
    }
  } finally {
    await c.closeAll();
  }
});

@Injectable()
class CatchUpTask {
  static readonly fired: string[] = [];
  constructor(private readonly cluster: ClusterCoordinator) {}

  @Interval(60_000)
  @SingletonTask({ name: 'catch-up', catchUp: true })
  tick() {
    CatchUpTask.fired.push(this.cluster.nodeId);
  }
}

test('catchUp: a new leader runs once the fire time that fell into the gap, when the ledger shows it did not run', async () => {
  const dir = tempDir();
  const options = { nodeId: 'solo', dataDir: join(dir, 'solo') };
  try {
    // An earlier tenure ran the task two periods ago, and nothing since.
    const first = await startTaskApp(options, []);
    const cluster = first.get(ClusterCoordinator);
    await cluster.waitForLeader();
    const period = 60_000;
    const lastFire = Math.floor(Date.now() / period) * period - 2 * period;
    expect((await cluster.tasks.start('catch-up', lastFire)).started).toBe(true);
    await cluster.tasks.finish('catch-up', lastFire, 'ok');
    await first.close();

    const second = await startTaskApp(options, [CatchUpTask]);
    try {
      await waitUntil(() => CatchUpTask.fired.length > 0, 5000, 'the catch-up run');
      const latest = second.get(ClusterCoordinator).tasks.latest('catch-up')!;
      expect(latest.fireTime).toBe(Math.floor(Date.now() / period) * period);
      await waitUntil(() => second.get(ClusterCoordinator).tasks.latest('catch-up')!.outcome === 'ok', 2000, 'the outcome');
      await sleep(100);
      expect(CatchUpTask.fired).toEqual(['solo']); // once
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

@SingletonTask('flaky')
@Injectable()
class FlakyTask implements LeaderTask {
  static readonly starts: number[] = [];
  async run(signal: AbortSignal): Promise<void> {
    FlakyTask.starts.push(Date.now());
    if (FlakyTask.starts.length <= 2) throw new Error(`failure ${FlakyTask.starts.length}`);
    await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
  }
}

test('a LeaderTask that throws while leading is restarted with doubling backoff; each run is in the ledger', async () => {
  const dir = tempDir();
  const app = await startTaskApp({ nodeId: 'solo', dataDir: join(dir, 'solo') }, [FlakyTask]);
  try {
    const cluster = app.get(ClusterCoordinator);
    await waitUntil(() => FlakyTask.starts.length === 3, 3000, 'the third start');
    const [s1, s2, s3] = FlakyTask.starts as [number, number, number];
    expect(s2 - s1).toBeGreaterThanOrEqual(95);
    expect(s3 - s2).toBeGreaterThanOrEqual(195);
    await waitUntil(() => cluster.tasks.runs('flaky').filter((r) => r.outcome === 'error').length === 2, 2000, 'the recorded failures');
    expect(cluster.tasks.runs('flaky').map((r) => r.outcome)).toEqual(['running', 'error', 'error']);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
