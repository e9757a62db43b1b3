import type { TaskRecords } from './backend.js';
import type { TaskRun, TaskStartResult } from './state/task-ledger-module.js';

export type { TaskRun, TaskOutcome, TaskStartResult } from './state/task-ledger-module.js';

/** A singleton run as its body sees it. */
export interface TaskRunContext {
  readonly task: string;
  /** The scheduled time this run belongs to. */
  readonly fireTime: number;
  /**
   * Fencing token: the log index of the ledger entry that started this run, strictly increasing across runs of every
   * task. Hand it to resources that must refuse an older run's late writes, as with a lock's token.
   */
  readonly token: number;
  /** The leader term the run started in. */
  readonly term: number;
  /** Aborts when this node's leadership or lease ends (or it shuts down): stop the work then. */
  readonly signal: AbortSignal;
}

/** How one fire went on this node. */
export type FireOutcome =
  /** The body ran and returned. */
  | { readonly ran: true; readonly run: TaskRun }
  /** The body ran and threw `error` (recorded in the ledger too). */
  | { readonly ran: true; readonly run: TaskRun; readonly error: unknown }
  /**
   * The body did not run here: `not-leader` (no valid lease, or leadership moved before the start was recorded),
   * `duplicate`/`evicted`/`skipped` (the ledger has this fire time already), `lease-lost` (the lease ended between the
   * start and the body; the next leader marks the run abandoned), `unrecorded` (the start could not be recorded).
   */
  | { readonly ran: false; readonly reason: 'not-leader' | 'duplicate' | 'evicted' | 'skipped' | 'lease-lost' | 'unrecorded'; readonly detail?: string };

/** What the ledger needs to know about this node's leadership. */
export interface LedgerLeadership {
  /** The current term (on etcd: the leader's election revision). */
  term(): number;
  /** The signal of this node's current tenure as leader with a valid lease, or null. */
  leaderSignal(): AbortSignal | null;
}

/** `cluster.tasks`: the replicated record of singleton task runs (the last 50 per task), and running them once. */
export class TaskLedger {
  constructor(
    private readonly records: TaskRecords,
    private readonly nodeId: string,
    private readonly leadership: LedgerLeadership,
  ) {}

  /** Recorded runs, newest fire time first: of `task`, or of every task. Reads this node's copy. */
  runs(task?: string): readonly TaskRun[] {
    return this.records.runs(task);
  }

  /** The run with the newest fire time of `task`, from this node's copy. */
  latest(task: string): TaskRun | undefined {
    return this.records.latest(task);
  }

  /**
   * Runs `body` for `task`'s fire at `fireTime` once cluster-wide, and only on the leader: with a valid lease, this
   * node records the start in the ledger as leader of its term (proposed here, never forwarded, and void if the
   * entry landed in another term), then runs the body with the run's signal and fencing token, then records how it
   * ended. Elsewhere, or when the ledger has this fire time already, it does not run.
   */
  async runOnce(task: string, fireTime: number, body: (run: TaskRunContext) => unknown, opts: { signal?: AbortSignal } = {}): Promise<FireOutcome> {
    const tenure = this.leadership.leaderSignal();
    if (!tenure) return { ran: false, reason: 'not-leader' };
    // `opts.signal` (the application shutting down, say) ends the run too.
    const signal = opts.signal ? AbortSignal.any([tenure, opts.signal]) : tenure;
    const term = this.leadership.term();
    let started: TaskStartResult;
    try {
      started = await this.start(task, fireTime, term);
    } catch (e) {
      return { ran: false, reason: 'unrecorded', detail: (e as Error).message };
    }
    if (!started.started) return { ran: false, reason: started.reason };
    const run = started.run;
    // The lease may have ended while the start was being committed: then the run is left to be marked abandoned.
    if (signal.aborted || this.leadership.leaderSignal() !== tenure) return { ran: false, reason: 'lease-lost' };
    // How the run ended is recorded without waiting for it: a node shutting down, or cut off, may not get it
    // committed, and then the next leader marks the run abandoned.
    try {
      await body({ task, fireTime, token: run.token, term: run.term, signal });
    } catch (error) {
      void this.finish(task, fireTime, 'error', error instanceof Error ? error.message : String(error), run.token).catch(() => undefined);
      return { ran: true, run, error };
    }
    void this.finish(task, fireTime, 'ok', undefined, run.token).catch(() => undefined);
    return { ran: true, run };
  }

  /**
   * Records the start of `task`'s run for `fireTime` as this node, leader of `term` (default: the current one).
   * Recorded from this node only: it throws NotLeaderException elsewhere. `started` is false when the fire time was
   * recorded before or when the tenure is over: the caller must not run it.
   */
  start(task: string, fireTime: number, term = this.leadership.term()): Promise<TaskStartResult> {
    return this.records.start(task, fireTime, this.nodeId, term);
  }

  /** Records a fire time that was deliberately not run. */
  skip(task: string, fireTime: number): Promise<void> {
    return this.records.skip(task, fireTime, this.nodeId);
  }

  /** Records how a started run ended (`token`: the run's, when known). */
  finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string, token?: number): Promise<void> {
    return this.records.finish(task, fireTime, outcome, error, token);
  }
}
