import type { Proposer } from './cluster-store.js';
import type { TaskLedgerModule, TaskRun } from './state/task-ledger-module.js';

export type { TaskRun, TaskOutcome } from './state/task-ledger-module.js';

/** `cluster.tasks`: the replicated record of singleton task runs (the last 50 per task). */
export class TaskLedger {
  constructor(
    private readonly proposer: Proposer,
    private readonly module: TaskLedgerModule,
    private readonly nodeId: string,
  ) {}

  /** Recorded runs, newest fire time first: of `task`, or of every task. Reads this node's copy. */
  runs(task?: string): readonly TaskRun[] {
    return this.module.runs(task);
  }

  /** The run with the newest fire time of `task`, from this node's copy. */
  latest(task: string): TaskRun | undefined {
    return this.module.latest(task);
  }

  /**
   * Records the start of `task`'s run for `fireTime`. `started` is false when that fire time was recorded before (by
   * this node or another): the caller must not run it again.
   */
  async start(task: string, fireTime: number): Promise<{ started: boolean; run: TaskRun }> {
    return (await this.proposer.propose('task', { op: 'start', task, fireTime, node: this.nodeId })) as { started: boolean; run: TaskRun };
  }

  /** Records a fire time that was deliberately not run. */
  async skip(task: string, fireTime: number): Promise<void> {
    await this.proposer.propose('task', { op: 'start', task, fireTime, node: this.nodeId, outcome: 'skipped' });
  }

  /** Records how a started run ended. */
  async finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string): Promise<void> {
    await this.proposer.propose('task', { op: 'end', task, fireTime, outcome, ...(error !== undefined ? { error } : {}) });
  }
}
