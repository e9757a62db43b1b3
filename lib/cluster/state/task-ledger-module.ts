import type { ApplyContext, StateModule } from './state-module.js';

/** `abandoned`: still running when a newer term began (its leader crashed or was deposed); it may still report its end. */
export type TaskOutcome = 'running' | 'ok' | 'error' | 'skipped' | 'abandoned';

/** One run of a singleton task, as recorded in the replicated ledger. */
export interface TaskRun {
  readonly task: string;
  /** The scheduled time the run belongs to (ms); runs are keyed by (task, fireTime). */
  readonly fireTime: number;
  readonly node: string;
  /** The term of the entry that started it: the leader's term. */
  readonly term: number;
  /** Fencing token: the log index of the entry that started the run, strictly increasing across runs. */
  readonly token: number;
  /** Entry (leader wall-clock) times. */
  readonly start: number;
  readonly end?: number;
  readonly outcome: TaskOutcome;
  readonly error?: string;
}

export type TaskCommand =
  | {
      readonly op: 'start';
      readonly task: string;
      readonly fireTime: number;
      readonly node: string;
      /** The term the proposer led when it asked: the start counts only if the entry was appended in that term. */
      readonly term?: number;
      readonly outcome?: 'running' | 'skipped';
    }
  | {
      readonly op: 'end';
      readonly task: string;
      readonly fireTime: number;
      /** The run's token: an end from another run of the same fire time (there is none, but be exact) is ignored. */
      readonly token?: number;
      readonly outcome: 'ok' | 'error';
      readonly error?: string;
    };

/**
 * `started` false: `duplicate` (the fire time was recorded before, `run` says by whom), `evicted` (older than the
 * runs kept), `not-leader` (the entry was appended in another term than the proposer led: leadership moved) or
 * `skipped` (recorded as deliberately not run).
 */
export type TaskStartResult =
  | { readonly started: true; readonly run: TaskRun }
  | { readonly started: false; readonly reason: 'duplicate' | 'evicted' | 'not-leader' | 'skipped'; readonly run: TaskRun | null };

export type TaskResult = TaskStartResult | { readonly ok: boolean };

/** Runs kept per task. */
export const TASK_RUNS_KEPT = 50;

interface TaskHistory {
  /** Oldest first. */
  runs: TaskRun[];
  /** Highest fire time evicted: a start at or below it is a duplicate we no longer remember in detail. */
  evictedUpTo: number;
}

/**
 * The run ledger of singleton tasks. A start for a (task, fireTime) that was seen before does not start again: when
 * leadership moves within one scheduled slot (the new leader's clock may be behind), the slot still runs once. A start
 * counts only in the term its proposer led, so a start that travelled to another leader never makes its sender a
 * runner. Run objects are frozen: readers get them without copying and cannot change the replica.
 */
export class TaskLedgerModule implements StateModule<TaskCommand, TaskResult> {
  readonly name = 'task';
  private tasks = new Map<string, TaskHistory>();

  /** Runs of `task`, newest first; of every task when omitted. */
  runs(task?: string): TaskRun[] {
    const lists = task === undefined ? [...this.tasks.values()] : [this.tasks.get(task)].filter((h) => h !== undefined);
    return lists.flatMap((h) => h.runs).sort((a, b) => b.fireTime - a.fireTime || b.start - a.start);
  }

  /** The newest run of `task` by fire time. */
  latest(task: string): TaskRun | undefined {
    const runs = this.tasks.get(task)?.runs;
    return runs?.[runs.length - 1];
  }

  apply(cmd: TaskCommand, ctx: ApplyContext): TaskResult {
    if (typeof cmd !== 'object' || cmd === null || typeof cmd.task !== 'string' || typeof cmd.fireTime !== 'number') {
      throw new TypeError('a task command needs a task name and a numeric fireTime');
    }
    let h = this.tasks.get(cmd.task);
    const i = h ? h.runs.findIndex((r) => r.fireTime === cmd.fireTime) : -1;
    if (cmd.op === 'start' && !this.remembersStarts()) return this.record(h, cmd, ctx);
    if (cmd.op === 'end') {
      const run = h?.runs[i];
      if (!h || !run || (run.outcome !== 'running' && run.outcome !== 'abandoned')) return { ok: false };
      if (cmd.token !== undefined && cmd.token !== run.token) return { ok: false };
      h.runs[i] = freeze({ ...run, end: ctx.time, outcome: cmd.outcome, ...(cmd.error !== undefined ? { error: cmd.error } : {}) });
      return { ok: true };
    }
    if (cmd.op !== 'start') throw new TypeError(`unknown task op ${JSON.stringify((cmd as { op?: unknown }).op)}`);
    if (cmd.term !== undefined && cmd.term !== ctx.term) return { started: false, reason: 'not-leader', run: null };
    if (h && i >= 0) return { started: false, reason: 'duplicate', run: h.runs[i]! };
    if (h && cmd.fireTime <= h.evictedUpTo) return { started: false, reason: 'evicted', run: null };
    return this.record(h, cmd, ctx);
  }

  /** Whether a start of a fire time seen before is refused (the rule the simulator's self-test breaks on purpose). */
  protected remembersStarts(): boolean {
    return true;
  }

  private record(history: TaskHistory | undefined, cmd: Extract<TaskCommand, { op: 'start' }>, ctx: ApplyContext): TaskStartResult {
    let h = history;
    if (!h) {
      h = { runs: [], evictedUpTo: -Infinity };
      this.tasks.set(cmd.task, h);
    }
    const outcome = cmd.outcome ?? 'running';
    const run = freeze({
      task: cmd.task,
      fireTime: cmd.fireTime,
      node: cmd.node,
      term: ctx.term,
      token: ctx.index,
      start: ctx.time,
      outcome,
      ...(outcome === 'skipped' ? { end: ctx.time } : {}),
    });
    // Kept ordered by fire time; starts nearly always arrive in order, so this is an append.
    let at = h.runs.length;
    while (at > 0 && h.runs[at - 1]!.fireTime > cmd.fireTime) at--;
    h.runs.splice(at, 0, run);
    while (h.runs.length > TASK_RUNS_KEPT) h.evictedUpTo = Math.max(h.evictedUpTo, h.runs.shift()!.fireTime);
    if (outcome === 'skipped') return { started: false, reason: 'skipped', run };
    return { started: true, run };
  }

  /**
   * The first entry of `term` was applied: runs still `running` from earlier terms lost their leader (it crashed or
   * was deposed, and its lease ended before this term could begin). They become `abandoned`; a late report of how
   * one ended still lands.
   */
  termBegins(term: number): void {
    for (const h of this.tasks.values()) {
      h.runs = h.runs.map((r) => (r.outcome === 'running' && r.term < term ? freeze({ ...r, outcome: 'abandoned' }) : r));
    }
  }

  snapshot(): unknown {
    return [...this.tasks.keys()].sort().map((t) => {
      const h = this.tasks.get(t)!;
      return [t, Number.isFinite(h.evictedUpTo) ? h.evictedUpTo : null, h.runs];
    });
  }

  restore(image: unknown): void {
    const rows = (Array.isArray(image) ? image : []) as [string, number | null, TaskRun[]][];
    this.tasks = new Map(rows.map(([t, evicted, runs]) => [t, { runs: runs.map((r) => freeze({ ...r, token: r.token ?? 0 })), evictedUpTo: evicted ?? -Infinity }]));
  }
}

function freeze(run: TaskRun): TaskRun {
  return Object.freeze(run);
}
