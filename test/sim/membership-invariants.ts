import {
  decodeMembership,
  isMembershipEntry,
  MessageType,
  sameMembership,
  votersOf,
  type Entry,
  type InitialState,
  type Membership,
  type Message,
  type Raft,
  type RaftConfig,
  type RaftConstructor,
  type SnapshotMeta,
} from '../../lib/raft/index.js';
import type { SimMember } from './member.js';
import type { Violation } from './invariants.js';

/**
 * The membership checks (Raft thesis §4.1), fed by the simulator's hooks:
 *
 * - **config-step**: every committed configuration differs from the previously committed one by at most one voter,
 *   and has a voter;
 * - **config-order**: every member applies the same configuration entries at the same log indexes (a configuration
 *   where another member applied something else, or something else where another applied a configuration, fails);
 * - **snapshot-membership**: a snapshot made or installed at index i carries the configuration committed at i;
 * - **non-voter-leader** / **removed-leader**: a new leader is a voter of its own configuration, and was not removed
 *   by a committed configuration (the workload never re-adds a removed id);
 * - **learner-campaign**: a (pre)vote request is sent only by a node that is a voter of its configuration;
 * - **commit-quorum**: when a leader advances its commit index, a majority of the voters it has in force at that
 *   moment hold the entry on disk.
 *
 * Committed configurations are learned as members apply them. When a member applies index i, every index below i
 * has been applied by some member already (it applied them itself, or installed a snapshot someone made from applied
 * state), so the committed configurations below i are all known here.
 */
export class MembershipChecks {
  /** Committed configurations by log index, ascending; index 0 is the initial one. */
  private readonly indexes: number[] = [0];
  private readonly configs = new Map<number, Membership>();
  /** Ids in some committed configuration and absent from a later one. */
  readonly removed = new Set<string>();
  /** Committed configuration entries seen (the initial one not counted). */
  changes = 0;
  constructor(initial: Membership) {
    this.configs.set(0, initial);
  }

  /** The newest committed configuration known, and its index. */
  latest(): { index: number; membership: Membership } {
    const index = this.indexes[this.indexes.length - 1]!;
    return { index, membership: this.configs.get(index)! };
  }

  /** The committed configuration in force at `index`. */
  at(index: number): Membership {
    let lo = 0;
    let hi = this.indexes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.indexes[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.configs.get(this.indexes[lo]!)!;
  }

  applied(node: string, e: Entry): Violation | null {
    const known = this.configs.get(e.index);
    if (!isMembershipEntry(e.data)) {
      if (known && e.index > 0) {
        return { kind: 'config-order', detail: `${node} applied an ordinary entry at index ${e.index}, where a configuration was applied before` };
      }
      return null;
    }
    let m: Membership;
    try {
      m = decodeMembership(e.data);
    } catch (err) {
      return { kind: 'config-step', detail: `${node} applied a malformed configuration at index ${e.index}: ${(err as Error).message}` };
    }
    if (known) {
      if (sameMembership(known, m)) return null;
      return { kind: 'config-order', detail: `${node} applied ${describe(m)} at index ${e.index}, where ${describe(known)} was applied before` };
    }
    const last = this.latest();
    if (e.index < last.index) {
      return { kind: 'config-order', detail: `${node} applied a configuration at index ${e.index} nobody applied before, below the one at ${last.index}` };
    }
    const problem = voterStep(last.membership, m);
    if (problem) {
      return {
        kind: 'config-step',
        detail: `the configuration committed at index ${e.index} (${describe(m)}) ${problem} from the one at ${last.index} (${describe(last.membership)})`,
      };
    }
    this.indexes.push(e.index);
    this.configs.set(e.index, m);
    this.changes++;
    for (const x of last.membership.members) if (!m.members.some((y) => y.id === x.id)) this.removed.add(x.id);
    return null;
  }

  snapshot(node: string, meta: SnapshotMeta, how: 'made' | 'installed'): Violation | null {
    const want = this.at(meta.index);
    if (sameMembership(want, meta.membership)) return null;
    return {
      kind: 'snapshot-membership',
      detail: `${node} ${how} a snapshot at index ${meta.index} carrying ${describe(meta.membership)}, but ${describe(want)} was in force there`,
    };
  }

  leaderElected(member: SimMember): Violation | null {
    const core = member.raft!.core;
    if (!core.voters.includes(member.id)) {
      return { kind: 'non-voter-leader', detail: `${member.id} leads term ${core.term} but is no voter of its configuration (${describe(core.membership)})` };
    }
    if (this.removed.has(member.id)) {
      return { kind: 'removed-leader', detail: `${member.id} leads term ${core.term} after a committed configuration removed it` };
    }
    return null;
  }

  /** Called for every message a core sends, at the moment it sends it. */
  sending(core: Raft, m: Message): Violation | null {
    if (m.type !== MessageType.Vote && m.type !== MessageType.PreVote) return null;
    if (core.voters.includes(core.id)) return null;
    const role = core.learners.includes(core.id) ? 'a learner' : 'not a member';
    return {
      kind: 'learner-campaign',
      detail: `${core.id} sent a ${MessageType[m.type]} for term ${m.term} to ${m.to} while ${role} of its configuration (${describe(core.membership)})`,
    };
  }

  /** Called when leader `core` moves its commit index to `index`, before it does. */
  committing(core: Raft, index: number, member: (id: string) => SimMember | undefined): Violation | null {
    const term = core.log.term(index);
    if (term === undefined) return null;
    const voters = core.voters;
    const holders = voters.filter((v) => member(v)?.durableHolds(index, term) ?? false);
    if (holders.length >= Math.floor(voters.length / 2) + 1) return null;
    return {
      kind: 'commit-quorum',
      detail: `${core.id} committed index ${index} (term ${term}) with voters ${voters.join(',')} in force, but only ${holders.join(',') || 'none'} hold it on disk`,
    };
  }
}

/** Why `next` is not a single-voter step from `prev`, or null (checked apart from the core's own rule). */
function voterStep(prev: Membership, next: Membership): string | null {
  const ids = next.members.map((x) => x.id);
  if (new Set(ids).size !== ids.length) return 'lists a member twice';
  const before = new Set(votersOf(prev));
  const after = new Set(votersOf(next));
  if (after.size === 0) return 'has no voter';
  let changed = 0;
  for (const v of after) if (!before.has(v)) changed++;
  for (const v of before) if (!after.has(v)) changed++;
  return changed > 1 ? `changes ${changed} voters` : null;
}

export function describe(m: Membership): string {
  return m.members.length === 0 ? '{}' : `{${m.members.map((x) => (x.role === 'voter' ? x.id : `${x.id}~`)).join(',')}}`;
}

export interface CoreWatch {
  /** Leader `core` is about to move its commit index to `index`. */
  committing(core: Raft, index: number): void;
  /** `core` sends `m` (it enters the core's outbox). */
  sending(core: Raft, m: Message): void;
}

/**
 * `Base` with hooks on the moment a leader commits and the moment any message is sent, for the commit-quorum and
 * learner-campaign checks (both need the configuration in force at that very moment, which the Readys do not show).
 */
export function watchCore(Base: RaftConstructor, watch: CoreWatch): RaftConstructor {
  return class WatchedCore extends Base {
    constructor(config: RaftConfig, state: InitialState) {
      super(config, state);
      const log = this.log;
      const commitTo = log.commitTo.bind(log);
      log.commitTo = (index: number): boolean => {
        if (this.role === 'leader' && index > log.committed) watch.committing(this, index);
        return commitTo(index);
      };
      // `send` is private to the core; a rename must fail loudly here rather than switch the check off.
      const self = this as unknown as { send?: (m: Message) => void };
      if (typeof self.send !== 'function') throw new Error('watchCore: the core has no send method to watch');
      const send = self.send.bind(this);
      self.send = (m: Message) => {
        watch.sending(this, m);
        send(m);
      };
    }
  };
}
