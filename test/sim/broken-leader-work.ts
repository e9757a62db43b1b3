import type { Proposer } from '../../lib/cluster/cluster-store.js';
import type { Timers } from '../../lib/io/clock.js';
import { LeaderForwarding, type ForwardReply } from '../../lib/cluster/leader-forwarding.js';
import { EventLogModule } from '../../lib/cluster/state/event-log-module.js';
import { TaskLedgerModule } from '../../lib/cluster/state/task-ledger-module.js';

/**
 * Deliberately broken parts of the leader-work layer, for the checker self-test: the runtime-level simulator must
 * catch each one with the check that guards its rule.
 */
export interface BrokenLeaderWork {
  readonly forwarding?: typeof LeaderForwarding;
  readonly tasks?: () => TaskLedgerModule;
  readonly events?: (retention: number) => EventLogModule;
  /** Wraps the node's proposer. */
  readonly proposer?: (inner: Proposer, timers: Timers) => Proposer;
}

/** The old bug: retries when the work itself threw NotLeaderException, so work that already ran runs again. */
class RetriesOnTheWorksOwnError extends LeaderForwarding {
  protected override mayRetry(reply: ForwardReply): boolean {
    return super.mayRetry(reply) || (reply.ran && !reply.ok && (reply.error as { name?: string }).name === 'NotLeaderException');
  }
}

/** Starts a fire time again when a new leader asks for it: the ledger forgets what it started. */
class ForgetsFireTimes extends TaskLedgerModule {
  protected override remembersStarts(): boolean {
    return false;
  }
}

/** Snapshots carry no kept events: a node catching up by snapshot silently skips the events inside it. */
class SnapshotsDropEvents extends EventLogModule {
  override rows(): unknown[] {
    return [];
  }
}

/** Retries every failed proposal (10 ms apart) until it succeeds, with no deadline of its own. */
function noDeadline(inner: Proposer, timers: Timers): Proposer {
  return {
    async propose(module, command, options) {
      for (;;) {
        try {
          return await inner.propose(module, command, options);
        } catch (e) {
          if ((e as Error).name === 'ClusterStoppedError') throw e;
          await new Promise<void>((r) => timers.setTimeout(r, 10));
        }
      }
    },
  };
}

export const BROKEN_LEADER_WORK: Readonly<Record<string, BrokenLeaderWork>> = {
  'retries-own-not-leader': { forwarding: RetriesOnTheWorksOwnError },
  'forgets-fire-times': { tasks: () => new ForgetsFireTimes() },
  'snapshots-drop-events': { events: (retention) => new SnapshotsDropEvents(retention) },
  'no-deadline': { proposer: noDeadline },
};
