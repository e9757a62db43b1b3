import type { NodeId } from '../../raft/index.js';
import type { TaskRecords } from '../backend.js';
import type { Proposer } from '../cluster-store.js';
import type { TaskLedgerModule, TaskRun, TaskStartResult } from '../state/task-ledger-module.js';

/** The task ledger kept in the replicated log: entries proposed here, read from this node's applied copy. */
export class LogTaskRecords implements TaskRecords {
  constructor(
    private readonly proposer: Proposer,
    private readonly module: TaskLedgerModule,
  ) {}

  runs(task?: string): readonly TaskRun[] {
    return this.module.runs(task);
  }

  latest(task: string): TaskRun | undefined {
    return this.module.latest(task);
  }

  /** Proposed on this node only, never forwarded: only the leader of `term` may start a run (void in another term). */
  async start(task: string, fireTime: number, node: NodeId, term: number): Promise<TaskStartResult> {
    return (await this.proposer.propose('task', { op: 'start', task, fireTime, node, term }, { localOnly: true })) as TaskStartResult;
  }

  async skip(task: string, fireTime: number, node: NodeId): Promise<void> {
    await this.proposer.propose('task', { op: 'start', task, fireTime, node, outcome: 'skipped' });
  }

  async finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string, token?: number): Promise<void> {
    await this.proposer.propose('task', {
      op: 'end',
      task,
      fireTime,
      outcome,
      ...(error !== undefined ? { error } : {}),
      ...(token !== undefined ? { token } : {}),
    });
  }
}
