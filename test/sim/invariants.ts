import type { Entry, RaftLog } from '../../lib/raft/index.js';
import type { SimMember } from './member.js';

export interface Violation {
  readonly kind: string;
  readonly detail: string;
}

/**
 * What the cluster has decided so far: the entry applied at each index (State Machine Safety), and the leader of each
 * term (Election Safety). Leader Completeness is checked against it whenever a node becomes leader.
 */
export class LogLedger {
  private readonly committed = new Map<number, Entry>();
  private readonly leaders = new Map<number, string>();

  get size(): number {
    return this.committed.size;
  }

  /** The entry applied at `index`, if any node applied one there. */
  entryAt(index: number): Entry | undefined {
    return this.committed.get(index);
  }

  applied(node: string, e: Entry): Violation | null {
    const known = this.committed.get(e.index);
    if (!known) {
      this.committed.set(e.index, e);
      return null;
    }
    if (known.term !== e.term || !sameBytes(known.data, e.data)) {
      return {
        kind: 'state-machine-safety',
        detail: `${node} applied index ${e.index} term ${e.term}, but term ${known.term} was applied there before`,
      };
    }
    return null;
  }

  leaderElected(node: string, term: number, log: RaftLog): Violation | null {
    const other = this.leaders.get(term);
    if (other !== undefined && other !== node) {
      return { kind: 'election-safety', detail: `${other} and ${node} are both leader in term ${term}` };
    }
    this.leaders.set(term, node);
    for (const [index, e] of this.committed) {
      if (index <= log.snapshotIndex()) continue;
      if (log.term(index) !== e.term) {
        return {
          kind: 'leader-completeness',
          detail: `${node} became leader of term ${term} without committed entry ${index} (term ${e.term}); it has term ${log.term(index) ?? 'none'}`,
        };
      }
    }
    return null;
  }
}

/**
 * Who may campaign and who may vote. With a fixed configuration every node votes; with membership changes a node
 * campaigns with the voters of its own configuration (its live log's, or its durable log's while it is down), and a
 * node stopped for good votes no more.
 */
export interface VoterView {
  /** The voters `n` would campaign with, or null when it cannot campaign (not a voter of its configuration, gone). */
  candidacy(n: SimMember): readonly string[] | null;
  /** The node with this id, if it may still vote. */
  voter(id: string): SimMember | undefined;
}

/**
 * Checks run after every simulated event; `full` adds the quadratic Log Matching check. `seenCommit` remembers each
 * node's commit index so a commit is examined once, when it happens. Without `view` every node is a voter.
 */
export function checkInvariants(nodes: readonly SimMember[], full: boolean, seenCommit: Map<string, number>, view?: VoterView): Violation | null {
  for (const n of nodes) {
    const core = n.raft?.core;
    if (!core || core.role !== 'leader') continue;
    const commit = core.log.committed;
    if (commit > (seenCommit.get(n.id) ?? 0)) {
      seenCommit.set(n.id, commit);
      const v = commitIsSafe(nodes, n, commit, view);
      if (v) return v;
    }
  }
  const leased = nodes.filter((n) => n.hasValidLease());
  if (leased.length > 1) {
    return {
      kind: 'lease-exclusivity',
      detail: leased.map((n) => `${n.id} (term ${n.raft!.core.term})`).join(' and ') + ' both hold a valid lease',
    };
  }
  if (!full) return null;
  const live = nodes.filter((n) => n.raft);
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      const v = logMatching(live[i]!, live[j]!);
      if (v) return v;
    }
  }
  return null;
}

/**
 * A committed entry must survive every future election (Leader Completeness, looked at from the commit): no node that
 * lacks it may collect a majority of votes, counting each voter by its durable log. Correct Raft guarantees this
 * because the commit quorum holds the entry on disk and is at least as up to date. Catches the Figure 8 mistake the
 * moment it commits, not only in the rare runs where a later leader goes on to overwrite the entry. With membership
 * changes the majority is of the candidate's own voters: single-server steps make it overlap the commit quorum.
 */
function commitIsSafe(nodes: readonly SimMember[], leader: SimMember, commit: number, view?: VoterView): Violation | null {
  const term = leader.raft!.core.log.term(commit);
  if (term === undefined) return null;
  for (const n of nodes) {
    const electorate = view ? view.candidacy(n) : null;
    if (view && !electorate) continue;
    const log = n.raft?.core.log;
    const cand = log ? { index: log.lastIndex(), term: log.lastTerm() } : n.durableLast();
    const has = log ? log.snapshotIndex() >= commit || log.term(commit) === term : cand.index >= commit;
    if (has) continue;
    const pool = electorate ? electorate.map((id) => view!.voter(id)).filter((v): v is SimMember => v !== undefined) : nodes;
    const voters = pool.filter((v) => {
      const d = v === n ? cand : v.durableLast();
      return cand.term > d.term || (cand.term === d.term && cand.index >= d.index);
    });
    if (voters.length >= Math.floor((electorate ?? nodes).length / 2) + 1) {
      return {
        kind: 'commit-safety',
        detail: `${leader.id} committed index ${commit} (term ${term}), yet ${n.id} lacks it and could win votes from ${voters.map((v) => v.id)}`,
      };
    }
  }
  return null;
}

/** §5.3: if two logs hold an entry with the same index and term, the logs are identical up to it. */
function logMatching(a: SimMember, b: SimMember): Violation | null {
  const la = a.raft!.core.log;
  const lb = b.raft!.core.log;
  const lo = Math.max(la.firstIndex(), lb.firstIndex());
  let hi = Math.min(la.lastIndex(), lb.lastIndex());
  while (hi >= lo && la.term(hi) !== lb.term(hi)) hi--;
  if (hi < lo) return null;
  const ea = la.slice(lo, hi + 1)!;
  const eb = lb.slice(lo, hi + 1)!;
  for (let k = 0; k < ea.length; k++) {
    if (ea[k]!.term !== eb[k]!.term || !sameBytes(ea[k]!.data, eb[k]!.data)) {
      return {
        kind: 'log-matching',
        detail: `${a.id} and ${b.id} agree at index ${hi} but differ at ${ea[k]!.index}`,
      };
    }
  }
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
