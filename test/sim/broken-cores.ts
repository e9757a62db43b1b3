import { CAMPAIGN_TRANSFER, MessageType, Raft, type Message, type RaftConstructor } from '../../lib/raft/index.js';

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
