import type { Entry, Membership, RaftNode, SnapshotMeta, SoftState } from '../../lib/raft/index.js';
import { decodeMembership, isMembershipEntry } from '../../lib/raft/index.js';
import type { KvInput, KvOutput } from './kv-model.js';

/** What the harness needs from a simulated member, whether it runs the bare core or the whole runtime. */
export interface SimMember {
  readonly id: string;
  readonly alive: boolean;
  /** The live core, for invariant checks; null while crashed or starting. */
  readonly raft: RaftNode | null;
  /** What this member's state machine reflects. */
  readonly appliedIndex: number;
  /** Last index and term surely on disk: what it would vote with after a crash. */
  durableLast(): { index: number; term: number };
  /** Why the member could not start after its last boot (e.g. storage refused to recover), or null. */
  readonly startFailure: string | null;
  /** Lease check as the member itself would answer it. */
  hasValidLease(): boolean;
  boot(): void;
  /** Power cut; with `afterSync` a Ready being written made it to disk but none of its messages left. */
  crash(afterSync?: boolean): void;
  transferLeader(to: string): void;
  /**
   * Starts a client command. `done` gets the output, or null when the outcome is unknown. Returns false when the
   * member refused at once (then the command surely never happened).
   */
  submit(input: KvInput, client: number, op: number, timeoutMs: number, done: (out: KvOutput | null) => void): boolean;
  /** Proposes a configuration on this member (if it leads); true when the core appended it. */
  proposeMembership(next: Membership): boolean;
  /** The configuration it would restart with: the newest in its durable log, else its snapshot's, else its start-up one. */
  durableMembership(): Membership;
  /** Whether its disk surely holds the entry at `index` of `term` (or a snapshot covering it). */
  durableHolds(index: number, term: number): boolean;
}

export interface MemberHooks {
  applied(member: SimMember, entry: Entry): void;
  softState(member: SimMember, s: SoftState): void;
  /** A snapshot this member made from its own state, or installed from the leader. */
  snapshot?(member: SimMember, meta: SnapshotMeta, how: 'made' | 'installed'): void;
}

/** The configuration a log would restart with: its newest configuration entry, else its snapshot's, else `initial`. */
export function newestMembership(snapshot: SnapshotMeta | null, entries: readonly Entry[], initial: Membership): Membership {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (isMembershipEntry(e.data)) return decodeMembership(e.data);
  }
  return snapshot?.membership ?? initial;
}

/** Whether a durable log (snapshot plus the entries after it) holds the entry at `index` of `term`. */
export function logHolds(snapshot: SnapshotMeta | null, entries: readonly Entry[], index: number, term: number): boolean {
  if (snapshot && index <= snapshot.index) return true; // covered, and a snapshot holds committed entries only
  const first = entries[0];
  if (!first || index < first.index) return false;
  return entries[index - first.index]?.term === term;
}
