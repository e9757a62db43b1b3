import type { ReadOnlyMode } from '../../lib/raft/index.js';
import type { Prng } from '../support/prng.js';
import type { FaultTarget, NetworkFaults, TargetedFault } from './sim-network.js';

/** A seed's fault profile, drawn from the seed itself so every seed explores a different mix. */
export interface Profile {
  readonly net: NetworkFaults;
  readonly crashEvery: number;
  readonly partitionEvery: number;
  readonly transferEvery: number;
  /** Chance that a newly elected leader is crashed within a few ms, before its first entries spread. */
  readonly crashNewLeader: number;
  /** Replays the Raft paper's Figure 8 pattern over and over (see simulation.ts). */
  readonly figure8: boolean;
  readonly snapshotEvery: number;
  readonly readOnly: ReadOnlyMode;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly clients: number;
  /** Runtime level: clients taking and releasing locks. */
  readonly lockClients: number;
  /** Runtime level: snapshots also wait for a log as large as the last image (the default), or only for snapshotEvery. */
  readonly snapshotGrowsWithState: boolean;
}

export function drawProfile(rng: Prng): Profile {
  const figure8 = rng.chance(0.2);
  return {
    figure8,
    net: {
      drop: rng.pick([0, 0.01, 0.05, 0.2]),
      duplicate: rng.pick([0, 0.02, 0.1]),
      delayMin: 0.1,
      delayMax: rng.pick([1, 5, 40]),
    },
    crashEvery: rng.pick([Infinity, 150, 400, 1500]),
    partitionEvery: rng.pick([Infinity, 60, 300, 1000]),
    transferEvery: rng.pick([Infinity, 500, 2000]),
    crashNewLeader: rng.pick([0, 0, 0.3, 0.6]),
    snapshotEvery: rng.pick([4, 16, 1000]),
    readOnly: rng.pick(['safe', 'lease'] as const),
    // Figure 8 needs an old entry acknowledged apart from the new leader's no-op: small messages split them.
    maxSizePerMsg: figure8 ? 40 : rng.pick([40, 1024 * 1024]),
    maxInflightMsgs: rng.pick([1, 4, 256]),
    clients: rng.int(2, 6),
    lockClients: rng.int(0, 4),
    // Drawn last so every earlier draw, and so every recorded seed, stays as it was.
    snapshotGrowsWithState: rng.chance(0.3),
  };
}

export function describeProfile(p: Profile): string {
  const n = p.net;
  return (
    `drop=${n.drop} dup=${n.duplicate} delay<=${n.delayMax}ms crash/${p.crashEvery} partition/${p.partitionEvery} ` +
    `transfer/${p.transferEvery} figure8=${p.figure8} crashNewLeader=${p.crashNewLeader} snapEvery=${p.snapshotEvery}${p.snapshotGrowsWithState ? '+image' : ''} ` +
    `reads=${p.readOnly} msgBytes=${p.maxSizePerMsg} inflight=${p.maxInflightMsgs} clients=${p.clients} lockClients=${p.lockClients}`
  );
}

/**
 * A seed's leader-work profile (runtime level), drawn from a stream of its own so the older draws keep their values:
 * the targeted fault, how many events the state keeps, and the workloads on forwarding, singleton fires and events.
 */
export interface LeaderWorkProfile {
  readonly targeted: TargetedFault | null;
  /** Small values make nodes that were down or cut off fall behind the retention (gap notices). */
  readonly eventRetention: number;
  /** Clients sending forwarded work from random members. */
  readonly forwardClients: number;
  /** Period of the scheduled singleton task fired on every member (ms), or Infinity for none. */
  readonly fireEvery: number;
  /** Clients publishing cluster events from random members. */
  readonly eventClients: number;
}

const TARGETS: readonly FaultTarget[] = ['timeout-now', 'transfer', 'vote-reply'];

export function drawTargeted(rng: Prng): TargetedFault | null {
  if (rng.chance(0.4)) return null;
  return { target: rng.pick(TARGETS), drop: rng.pick([0, 0.3, 0.9]), hold: rng.pick([0, 0.5, 0.9]), holdMs: rng.range(100, 400) };
}

export function drawLeaderWork(rng: Prng): LeaderWorkProfile {
  return {
    targeted: drawTargeted(rng),
    eventRetention: rng.pick([3, 20, 10_000]),
    forwardClients: rng.int(0, 4),
    fireEvery: rng.pick([Infinity, 40, 100]),
    eventClients: rng.int(0, 4),
  };
}

export function describeLeaderWork(w: LeaderWorkProfile): string {
  const t = w.targeted;
  const targeted = t ? `${t.target}(drop=${t.drop},hold=${t.hold}/${Math.round(t.holdMs)}ms)` : 'none';
  return `targeted=${targeted} eventRetention=${w.eventRetention} forwardClients=${w.forwardClients} fireEvery=${w.fireEvery} eventClients=${w.eventClients}`;
}

/**
 * A membership seed's profile (`--membership`), drawn from a stream of its own: how many spare nodes wait to be added
 * and how many fresh incarnations can replace removed ones, how often the leader changes the configuration, how few
 * voters it may go down to, and the nemeses aimed at changes.
 */
export interface MembershipProfile {
  /** Nodes started with an empty configuration, waiting to be added. */
  readonly spares: number;
  /** Fresh nodes (new id, empty disk) that may join the spare pool when a removed node is stopped for good. */
  readonly reserves: number;
  /** Mean ms between the leader's change attempts. */
  readonly changeEvery: number;
  /** Removals and demotions stop at this many voters. */
  readonly minVoters: number;
  /** Chance that a new leader tries a change at once, before its no-op commits (it must be refused). */
  readonly eagerNewLeader: number;
  /** Chance that a leader which just proposed a voter change is cut off together with the node the change is about. */
  readonly isolateAfterChange: number;
  /** Chance that an attempt is a change of two voters at once (it must be refused). */
  readonly twoVoters: number;
  /** How long a removed node keeps running before it is stopped for good (Infinity: it keeps running). */
  readonly lingerMs: number;
}

export function drawMembership(rng: Prng): MembershipProfile {
  // A third of the seeds race changes: leaders cut off right after proposing, successors changing at once.
  const race = rng.chance(1 / 3);
  return {
    spares: rng.int(1, 4),
    reserves: rng.int(0, 3),
    changeEvery: rng.pick([30, 80, 200]),
    minVoters: rng.pick([1, 2, 2, 3]),
    eagerNewLeader: race ? 0.9 : rng.pick([0, 0.3]),
    isolateAfterChange: race ? 0.6 : rng.pick([0, 0, 0.1]),
    twoVoters: rng.pick([0, 0.05]),
    lingerMs: rng.pick([Infinity, 200, 800]),
  };
}

export function describeMembership(p: MembershipProfile): string {
  return (
    `spares=${p.spares} reserves=${p.reserves} changeEvery=${p.changeEvery} minVoters=${p.minVoters} eager=${p.eagerNewLeader} ` +
    `isolateAfterChange=${p.isolateAfterChange} twoVoters=${p.twoVoters} linger=${p.lingerMs}`
  );
}
