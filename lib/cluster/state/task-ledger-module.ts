import type { ApplyContext, StateModule } from './state-module.js';

export type TaskOutcome = 'running' | 'ok' | 'error' | 'skipped';

/** One run of a singleton task, as recorded in the replicated ledger. */
export interface TaskRun {
  readonly task: string;
  /** The scheduled time the run belongs to (ms); runs are keyed by (task, fireTime). */
  readonly fireTime: number;
  readonly node: string;
  /** The term of the entry that started it: the leader's term. */
  readonly term: number;
  /** Entry (leader wall-clock) times. */
  readonly start: number;
  readonly end?: number;
  readonly outcome: TaskOutcome;
  readonly error?: string;
}

export type TaskCommand =
  | { readonly op: 'start'; readonly task: string; readonly fireTime: number; readonly node: string; readonly outcome?: 'running' | 'skipped' }
  | { readonly op: 'end'; readonly task: string; readonly fireTime: number; readonly outcome: 'ok' | 'error'; readonly error?: string };

export type TaskResult = { readonly started: boolean; readonly run: TaskRun } | { readonly ok: boolean };

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
 * leadership moves within one scheduled slot (the new leader's clock may be behind), the slot still runs once.
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
    let h = this.tasks.get(cmd.task);
    const i = h ? h.runs.findIndex((r) => r.fireTime === cmd.fireTime) : -1;
    if (cmd.op === 'end') {
      const run = h?.runs[i];
      if (!h || !run || run.outcome !== 'running') return { ok: false };
      h.runs[i] = { ...run, end: ctx.time, outcome: cmd.outcome, ...(cmd.error !== undefined ? { error: cmd.error } : {}) };
      return { ok: true };
    }
    if (h && i >= 0) return { started: false, run: h.runs[i]! };
    if (h && cmd.fireTime <= h.evictedUpTo) {
      return { started: false, run: { task: cmd.task, fireTime: cmd.fireTime, node: '', term: 0, start: 0, outcome: 'skipped' } };
    }
    if (!h) {
      h = { runs: [], evictedUpTo: -Infinity };
      this.tasks.set(cmd.task, h);
    }
    const outcome = cmd.outcome ?? 'running';
    const run: TaskRun = {
      task: cmd.task,
      fireTime: cmd.fireTime,
      node: cmd.node,
      term: ctx.term,
      start: ctx.time,
      outcome,
      ...(outcome === 'skipped' ? { end: ctx.time } : {}),
    };
    // Kept ordered by fire time; starts nearly always arrive in order, so this is an append.
    let at = h.runs.length;
    while (at > 0 && h.runs[at - 1]!.fireTime > cmd.fireTime) at--;
    h.runs.splice(at, 0, run);
    while (h.runs.length > TASK_RUNS_KEPT) h.evictedUpTo = Math.max(h.evictedUpTo, h.runs.shift()!.fireTime);
    return { started: outcome === 'running', run };
  }

  snapshot(): unknown {
    return [...this.tasks.keys()].sort().map((t) => {
      const h = this.tasks.get(t)!;
      return [t, Number.isFinite(h.evictedUpTo) ? h.evictedUpTo : null, h.runs];
    });
  }

  restore(image: unknown): void {
    const rows = (Array.isArray(image) ? image : []) as [string, number | null, TaskRun[]][];
    this.tasks = new Map(rows.map(([t, evicted, runs]) => [t, { runs: [...runs], evictedUpTo: evicted ?? -Infinity }]));
  }
}
