import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { Subscription } from 'rxjs';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { schedulePeriod } from '../decorators/schedule-metadata.js';
import { SINGLETON_TASK_METADATA, singletonMethodOf, type SingletonTaskInfo } from '../decorators/singleton-task.decorator.js';
import type { LeaderTask } from '../decorators/singleton-task.types.js';
import type { TaskRunContext } from '../../cluster/task-ledger.js';
import { runSingletonFire } from './singleton-fire.js';

interface ClassTask {
  readonly name: string;
  readonly instance: LeaderTask;
}

interface CatchUpTask {
  readonly name: string;
  readonly period: number;
  readonly run: (run: TaskRunContext) => unknown;
}

/** How often leadership is checked; a lease becomes valid a heartbeat round after the election, with no event of its own. */
const POLL_MS = 20;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** How long shutdown waits for aborted runs to return. */
const SHUTDOWN_WAIT_MS = 5000;

/**
 * Runs @SingletonTask LeaderTask providers while this node leads with a valid lease, and catches up missed fires of
 * scheduled methods with `catchUp: true` when this node becomes leader. Runs never overlap across nodes as long as
 * each run returns when its signal aborts: the signal aborts when the lease lapses, which is before another node can
 * hold one.
 */
@Injectable()
export class SingletonTaskRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('CatgaCluster');
  private readonly classTasks: ClassTask[] = [];
  private readonly catchUps: CatchUpTask[] = [];
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private tenure: AbortSignal | null = null;
  private poll: NodeJS.Timeout | null = null;
  private sub: Subscription | null = null;

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  onApplicationBootstrap(): void {
    const names = new Set<string>();
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | null | undefined;
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
      const meta = wrapper.metatype ? (Reflect.getMetadata(SINGLETON_TASK_METADATA, wrapper.metatype) as SingletonTaskInfo | undefined) : undefined;
      if (meta) {
        if (typeof instance.run !== 'function') {
          throw new Error(`@SingletonTask('${meta.name}') on ${wrapper.metatype!.name}: the class must implement LeaderTask (run(signal))`);
        }
        if (names.has(meta.name)) throw new Error(`two @SingletonTask classes are named "${meta.name}"; give one another name`);
        names.add(meta.name);
        this.classTasks.push({ name: meta.name, instance: instance as unknown as LeaderTask });
      }
      const proto = Object.getPrototypeOf(instance) as object | null;
      if (!proto) continue;
      for (const key of this.scanner.getAllMethodNames(proto)) {
        const fn = instance[key];
        const m = singletonMethodOf(fn);
        if (!m?.options.catchUp) continue;
        const period = schedulePeriod(fn as object);
        if (!period) {
          this.logger.warn(`${m.name}: catchUp needs @Interval or a fixed-period @Cron (like */5 * * * * *); it is ignored`);
          continue;
        }
        this.catchUps.push({ name: m.name, period, run: (run) => m.original.call(instance, run) });
      }
    }
    if (this.classTasks.length === 0 && this.catchUps.length === 0) return;
    this.sub = this.cluster.leadership$.subscribe({ next: () => this.check(), error: () => undefined });
    this.poll = setInterval(() => this.check(), POLL_MS);
    this.poll.unref();
    this.check();
  }

  /** Aborts running tasks before the cluster module hands leadership over and stops. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping.abort(new Error('the application is shutting down'));
    if (this.poll) clearInterval(this.poll);
    this.sub?.unsubscribe();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((r) => {
        timer = setTimeout(r, SHUTDOWN_WAIT_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** Starts this tenure's work once per tenure. */
  private check(): void {
    const signal = this.cluster.leaderSignal();
    // The core's lease can be valid a moment before the runtime publishes the leadership (isLeader), and ledger
    // writes and leadership confirmation go by the latter: wait for both.
    if (!signal || !this.cluster.isLeader || signal === this.tenure || this.stopping.signal.aborted) return;
    this.tenure = signal;
    const tenure = AbortSignal.any([signal, this.stopping.signal]);
    for (const t of this.classTasks) this.track(this.runLoop(t, tenure));
    if (this.catchUps.length > 0) this.track(this.catchUp(tenure));
  }

  private track(p: Promise<void>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Runs `run()` for this tenure, each start fenced in the ledger (TaskLedger.runOnce); restarts it after a failure. */
  private async runLoop(t: ClassTask, signal: AbortSignal): Promise<void> {
    let backoff = BACKOFF_FIRST_MS;
    while (!signal.aborted) {
      const r = await this.cluster.tasks.runOnce(t.name, Date.now(), (run) => t.instance.run(run.signal, run), { signal });
      if (signal.aborted) return;
      if (!r.ran) {
        if (r.reason === 'unrecorded') this.logger.warn(`${t.name}: not started, its start could not be recorded (${r.detail})`);
        return;
      }
      if (!('error' in r)) {
        this.logger.log(`${t.name}: run() returned while this node leads; it starts again at the next leadership`);
        return;
      }
      const message = r.error instanceof Error ? r.error.message : String(r.error);
      this.logger.error(`${t.name}: run() failed (${message}); restarting in ${backoff} ms`);
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  /** The newest due fire time of each catch-up task, when the ledger shows it was not run (the failover gap). */
  private async catchUp(signal: AbortSignal): Promise<void> {
    try {
      await this.cluster.confirmLeadership(); // the ledger here then holds every run committed before
    } catch {
      return;
    }
    for (const c of this.catchUps) {
      if (signal.aborted) return;
      const last = this.cluster.tasks.latest(c.name);
      const due = Math.floor(Date.now() / c.period) * c.period;
      if (!last || last.fireTime >= due) continue;
      this.logger.log(`${c.name}: catching up the fire of ${new Date(due).toISOString()} (last run ${new Date(last.fireTime).toISOString()})`);
      await runSingletonFire(this.cluster, c.name, due, c.run, this.logger).catch((e: Error) =>
        this.logger.error(`${c.name}: catch-up run failed: ${e.message}`),
      );
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
