import { Injectable, Module, type INestApplicationContext, type Provider } from '@nestjs/common';
import { Cron, Interval, ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, SingletonTask, type ClusterModuleOptions, type LeaderTask } from '../../lib/index';
import { crashNode } from '../support/backends';
import { freePorts } from '../transport/helpers';

/** Shared by the apps of one test cluster (they run in one process): what ran where, and when. */
export class TaskJournal {
  readonly fires: { task: string; node: string; at: number }[] = [];
  readonly runs: { node: string; start: number; stop: number | null }[] = [];
}

@Injectable()
export class IntervalTasks {
  constructor(
    private readonly journal: TaskJournal,
    private readonly cluster: ClusterCoordinator,
  ) {}

  @Interval(100)
  @SingletonTask()
  scheduleFirst() {
    this.journal.fires.push({ task: 'scheduleFirst', node: this.cluster.nodeId, at: Date.now() });
  }

  @SingletonTask({ name: 'singleton-first' })
  @Interval(100)
  singletonFirst() {
    this.journal.fires.push({ task: 'singleton-first', node: this.cluster.nodeId, at: Date.now() });
  }
}

@Injectable()
export class CronTasks {
  constructor(
    private readonly journal: TaskJournal,
    private readonly cluster: ClusterCoordinator,
  ) {}

  @Cron('* * * * * *')
  @SingletonTask()
  everySecond() {
    this.journal.fires.push({ task: 'everySecond', node: this.cluster.nodeId, at: Date.now() });
  }
}

/** Runs until its signal aborts; records each run's start and stop. */
@SingletonTask('long')
@Injectable()
export class LongTask implements LeaderTask {
  constructor(
    private readonly journal: TaskJournal,
    private readonly cluster: ClusterCoordinator,
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    const r: TaskJournal['runs'][number] = { node: this.cluster.nodeId, start: Date.now(), stop: null };
    this.journal.runs.push(r);
    await new Promise<void>((resolve) => {
      const stop = () => {
        r.stop = Date.now();
        resolve();
      };
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
    });
  }
}

export interface TaskNode {
  readonly id: string;
  readonly app: INestApplicationContext;
  readonly cluster: ClusterCoordinator;
}

const quiet = { log() {}, warn() {}, error() {} };

export async function startTaskApp(options: ClusterModuleOptions, providers: Provider[]): Promise<INestApplicationContext> {
  @Module({ providers })
  class TasksModule {}
  const ref = await Test.createTestingModule({
    imports: [ScheduleModule.forRoot(), CatgaClusterModule.forRoot({ logger: quiet, ...options }), TasksModule],
  }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

/**
 * Three apps in this process over loopback (free ports unless `basePort` is given), each with `providers` (and a
 * TaskJournal shared by all three).
 */
export async function startTaskCluster(basePort: number | undefined, providers: Provider[], extra: Partial<ClusterModuleOptions> = {}) {
  const journal = new TaskJournal();
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-tasks-'));
  const ids = ['a', 'b', 'c'];
  const ports = basePort === undefined ? await freePorts(ids.length) : ids.map((_, i) => basePort + i);
  const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
  const apps = await Promise.all(
    ids.map((id) =>
      startTaskApp(
        { nodeId: id, members, dataDir: join(dataRoot, id), secret: 'task-test-secret', ...extra },
        [{ provide: TaskJournal, useValue: journal }, ...providers],
      ),
    ),
  );
  const nodes: TaskNode[] = apps.map((app, i) => ({ id: ids[i]!, app, cluster: app.get(ClusterCoordinator) }));
  const closed = new Set<TaskNode>();
  await Promise.all(nodes.map((n) => n.cluster.waitForLeader({ timeout: 10_000 })));
  const live = () => nodes.filter((n) => !closed.has(n));
  return {
    journal,
    nodes,
    live,
    leader: () => live().find((n) => n.cluster.hasLease()),
    /** Waits until some live node leads with a valid lease. */
    waitLeader: async (timeout = 5000): Promise<TaskNode> => {
      const deadline = Date.now() + timeout;
      for (;;) {
        const l = live().find((n) => n.cluster.hasLease());
        if (l) return l;
        if (Date.now() > deadline) throw new Error('no leader with a lease');
        await sleep(10);
      }
    },
    /** Closes a node's app (a leader hands over first). */
    close: async (n: TaskNode) => {
      closed.add(n);
      await n.app.close();
    },
    /** Stops a node's Raft runtime at once, as a crash would look to the others; the app stays up, cut off. */
    crash: async (n: TaskNode) => {
      closed.add(n);
      await crashNode(n.cluster);
    },
    closeAll: async () => {
      await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'catga-tasks-'));
}

/** Polls `cond` until it holds or `timeout` ms pass. */
export async function waitUntil(cond: () => boolean, timeout = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
