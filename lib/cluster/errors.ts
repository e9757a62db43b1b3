import type { NodeId } from '../raft/index.js';

/** This node is not the leader; `leaderId` names the one it knows of ('' when none). */
export class NotLeaderException extends Error {
  override name = 'NotLeaderException';
  constructor(
    readonly leaderId: NodeId,
    message = leaderId ? `this node is not the leader; the leader is ${leaderId}` : 'this node is not the leader and no leader is known',
  ) {
    super(message);
  }
}

/** No leader is known right now (an election is running or a quorum is unreachable); retrying later may succeed. */
export class NoLeaderException extends Error {
  override name = 'NoLeaderException';
  constructor(message = 'no leader is known: an election is in progress or a quorum of members is unreachable') {
    super(message);
  }
}

/** The proposal's log slot went to another entry: it was surely not applied and can be retried. */
export class ProposalDroppedError extends Error {
  override name = 'ProposalDroppedError';
}

/** The outcome is unknown (timeout, or the node moved past the slot by snapshot): it may or may not have applied. */
export class ProposalOutcomeUnknownError extends Error {
  override name = 'ProposalOutcomeUnknownError';
}

/** The runtime is stopped or stopping. */
export class ClusterStoppedError extends Error {
  override name = 'ClusterStoppedError';
  constructor(message = 'the cluster node is stopped') {
    super(message);
  }
}

/** A command forwarded to the leader was sent, but no answer came back: it may or may not have run there. */
export class ForwardOutcomeUnknownException extends Error {
  override name = 'ForwardOutcomeUnknownException';
}

/**
 * A membership change was refused before it entered the log (an id that exists, the last voter, two changes at once,
 * an unreachable new member…): nothing changed, and the message says why.
 */
export class MembershipChangeError extends Error {
  override name = 'MembershipChangeError';
}
