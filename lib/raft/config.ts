import { invalidMembership, membershipOf, type Membership } from './membership.js';
import type { NodeId } from './types.js';

export type ReadOnlyMode = 'safe' | 'lease';

export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The configuration to start from when neither snapshot nor log holds one: `membership`, or `voters` as a shorthand
   * for voters without addresses. Empty for a node that waits to be added to an existing cluster.
   */
  readonly voters?: readonly NodeId[];
  readonly membership?: Membership;
  /** Ticks without hearing from a leader before campaigning; the actual timeout is random in [T, 2T). */
  readonly electionTick: number;
  readonly heartbeatTick: number;
  /** Uniform in [0, 1); injected so the core stays deterministic. */
  readonly random: () => number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** 'lease' answers ReadIndex from the leader lease without a heartbeat round when the lease is valid. */
  readonly readOnly?: ReadOnlyMode;
  /** Bound on the tick-rate difference between any node and real time (0.05 = 5%); shortens the lease. */
  readonly maxClockDrift?: number;
  /** Byte budget of one App message's entries and of one snapshot chunk. */
  readonly maxSizePerMsg?: number;
  /** App messages in flight to one follower before the leader waits for acknowledgements. */
  readonly maxInflightMsgs?: number;
}

export interface ResolvedConfig extends Required<Omit<RaftConfig, 'voters'>> {
  /** Ticks a leader may act on a quorum's acknowledgement of a message it sent at tick t: [t, t + leaseTicks). */
  readonly leaseTicks: number;
}

export class RaftConfigError extends Error {
  override name = 'RaftConfigError';
}

/**
 * A follower that acknowledged the leader refuses votes for at least (electionTick - 1) of its own ticks, which is at
 * least (electionTick - 1) / (1 + drift) real tick periods. A lease of L leader ticks lasts at most L / (1 - drift)
 * periods, so L <= (electionTick - 1)(1 - drift)/(1 + drift), minus one tick for the discrete edge.
 */
export function leaseTicksFor(electionTick: number, maxClockDrift: number): number {
  return Math.floor(((electionTick - 1) * (1 - maxClockDrift)) / (1 + maxClockDrift)) - 1;
}

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  // `??` rather than spreading defaults: an option passed as undefined means "default", not "unset".
  const r = {
    ...c,
    preVote: c.preVote ?? true,
    checkQuorum: c.checkQuorum ?? true,
    readOnly: c.readOnly ?? ('safe' as ReadOnlyMode),
    maxClockDrift: c.maxClockDrift ?? 0.1,
    maxSizePerMsg: c.maxSizePerMsg ?? 1024 * 1024,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
  };
  const fail = (field: string, want: string) => {
    throw new RaftConfigError(`raft config ${field}: expected ${want}`);
  };
  if (!r.id) fail('id', 'a non-empty node id');
  if (!Number.isInteger(r.heartbeatTick) || r.heartbeatTick < 1) fail('heartbeatTick', 'an integer >= 1');
  if (!Number.isInteger(r.electionTick) || r.electionTick <= r.heartbeatTick) fail('electionTick', 'an integer > heartbeatTick');
  if (!(r.maxClockDrift >= 0 && r.maxClockDrift < 0.5)) fail('maxClockDrift', 'a number in [0, 0.5)');
  if (!(r.maxSizePerMsg >= 1)) fail('maxSizePerMsg', 'a positive number of bytes');
  if (!Number.isInteger(r.maxInflightMsgs) || r.maxInflightMsgs < 1) fail('maxInflightMsgs', 'an integer >= 1');
  if (c.voters && c.membership) fail('voters', 'either voters or membership, not both');
  const membership = c.membership ?? membershipOf(c.voters ?? []);
  const problem = invalidMembership(membership);
  if (problem) fail('membership', `a valid configuration (${problem})`);
  const leaseTicks = leaseTicksFor(r.electionTick, r.maxClockDrift);
  if (r.checkQuorum && leaseTicks < 1) fail('electionTick', 'large enough for a leader lease of at least one tick');
  const { voters: _shorthand, ...rest } = r;
  return { ...rest, membership, leaseTicks: Math.max(leaseTicks, 0) };
}
