import {
  CAMPAIGN_TRANSFER,
  invalidChange,
  MessageType,
  Raft,
  votersOf,
  type InitialState,
  type Membership,
  type Message,
  type RaftConfig,
  type RaftConstructor,
} from '../../lib/raft/index.js';
import { majorityValue } from '../../lib/raft/quorum.js';

/**
 * Deliberately broken cores for the checker self-test: each drops one safety rule. The simulator must catch every
 * one of them, or its checks prove nothing.
 */

/** Commits an entry of an earlier term by counting replicas (the Figure 8 mistake). */
class CommitsOldTerms extends Raft {
  protected override canCommit(): boolean {
    return true;
  }
}

/** Grants a vote to every candidate that asks, several per term. */
class VotesTwice extends Raft {
  protected override canVote(): boolean {
    return true;
  }
}

/** Votes for candidates whose log is behind its own. */
class SkipsUpToDateCheck extends Raft {
  protected override candidateUpToDate(_m: Message): boolean {
    return true;
  }
}

/** Believes its lease is valid whenever it is leader, without evidence from a quorum. */
class AssumesLease extends Raft {
  protected override leaseStart(): number {
    return this.now;
  }
}

/**
 * Gets its lease back after an abandoned transfer, but nobody checks the fence: a late TimeoutNow still starts a
 * campaign, and voters honour it while the old leader counts on their acknowledgements.
 */
class IgnoresTransferFence extends Raft {
  protected override honorsTransfer(m: Message): boolean {
    return m.type === MessageType.Vote && m.context === CAMPAIGN_TRANSFER;
  }

  protected override obeysTimeoutNow(): boolean {
    return true;
  }
}

export const BROKEN_CORES: Readonly<Record<string, RaftConstructor>> = {
  'commits-old-terms': CommitsOldTerms,
  'votes-twice': VotesTwice,
  'skips-up-to-date-check': SkipsUpToDateCheck,
  'assumes-lease': AssumesLease,
  'ignores-transfer-fence': IgnoresTransferFence,
};

/**
 * Broken membership rules, for the self-test of the membership simulation (`--membership`). Each keeps the core's
 * other refusals and drops one, recognised by its message: should that wording change, the broken core turns correct
 * and the self-test fails rather than passing unseen.
 */

/**
 * A new leader changes the configuration before it has committed an entry of its term (the single-server change bug,
 * thesis §4.1): it cannot see that an earlier leader's change, which it never received, may still win.
 */
class SkipsOwnTermCommit extends Raft {
  protected override membershipChangeRefusal(next: Membership): string | null {
    const refusal = super.membershipChangeRefusal(next);
    if (refusal === null || !refusal.includes('not yet committed an entry of its term')) return refusal;
    // The rules the core checks after that one.
    const pending = this.pendingMembershipIndex();
    if (pending > 0) return `another membership change (log index ${pending}) is still in progress`;
    const problem = invalidChange(this.membership, next);
    if (problem) return problem;
    return votersOf(next).includes(this.id) ? null : 'the leader cannot remove or demote itself';
  }
}

/** Accepts a change of two voters at once (a replace in one step, say): old and new majorities need not overlap. */
class ChangesTwoVoters extends Raft {
  protected override membershipChangeRefusal(next: Membership): string | null {
    const refusal = super.membershipChangeRefusal(next);
    if (refusal === null || !refusal.includes('voters at once')) return refusal;
    return votersOf(next).includes(this.id) ? null : 'the leader cannot remove or demote itself';
  }
}

/** Replaces a private method of `core` (the rules below live in private methods); a rename fails here, loudly. */
function replacePrivate<T extends object>(core: T, name: string, fn: (...args: never[]) => unknown): void {
  const self = core as unknown as Record<string, unknown>;
  if (typeof self[name] !== 'function') throw new Error(`broken core: the core has no method ${name} to replace`);
  self[name] = fn;
}

/** A learner campaigns like a voter (it is promotable whenever it is a member at all). */
class LearnerCampaigns extends Raft {
  constructor(config: RaftConfig, state: InitialState) {
    super(config, state);
    replacePrivate(this, 'promotable', () => this.membership.members.some((x) => x.id === this.id));
  }
}

/** Counts learners toward the commit quorum: a majority of all members, not of the voters. */
class CountsLearners extends Raft {
  constructor(config: RaftConfig, state: InitialState) {
    super(config, state);
    replacePrivate(this, 'maybeCommit', () => {
      const index = majorityValue([...this.prs.values()].map((p) => p.match));
      if (index <= this.log.committed || !this.canCommit(index)) return false;
      return this.log.commitTo(index);
    });
  }
}

export const BROKEN_MEMBERSHIP_CORES: Readonly<Record<string, RaftConstructor>> = {
  'skips-own-term-commit': SkipsOwnTermCommit,
  'changes-two-voters': ChangesTwoVoters,
  'learner-campaigns': LearnerCampaigns,
  'counts-learners': CountsLearners,
};
