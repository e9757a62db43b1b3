import type { TaskRunContext } from '../../cluster/task-ledger.js';

export interface SingletonTaskOptions {
  /** Name the runs are recorded under in the ledger (default: `Class.method`, or the class name for a LeaderTask). */
  readonly name?: string;
  /**
   * For a scheduled method with a fixed period (@Interval, or a @Cron like `*\/5 * * * * *`): a new leader runs, once,
   * the latest fire time that fell into the failover gap, when the ledger shows it did not run.
   */
  readonly catchUp?: boolean;
}

/**
 * A long-running singleton: started when this node leads (with a valid lease), its signal aborted when that ends.
 * `run` describes this run: its fencing token (the ledger entry that started it), term and signal.
 */
export interface LeaderTask {
  run(signal: AbortSignal, run: TaskRunContext): Promise<void>;
}
