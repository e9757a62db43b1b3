import type { LeadershipChange } from '../../cluster/cluster-coordinator.js';
import type { MembershipEvent } from '../../cluster/cluster-membership.js';
import type { BackendKind, BackendStatus, EtcdView, RuntimeStatus } from '../../cluster/backend.js';
import type { TaskRun } from '../../cluster/task-ledger.js';

/** One member as the status endpoint reports it. */
export interface MemberReport {
  readonly id: string;
  /** host:port of its cluster listener. */
  readonly address: string;
  readonly isSelf: boolean;
  /** This node's own role for itself; for others 'leader' or 'follower' by who leads, 'unknown' while no one does. */
  readonly role: string;
  /** Whether it votes: a learner replicates and serves reads, but never votes, counts toward no quorum, never leads. */
  readonly membership: 'voter' | 'learner';
  /** This node has a live, authenticated connection to it; null for itself and in a single-member cluster. */
  readonly connected: boolean | null;
  /** Highest log index known to be on it (see `viewFrom`); null when no leader's view is available. */
  readonly matchIndex: number | null;
  /** Entries it is behind the leader's last index; null when no leader's view is available. */
  readonly lag: number | null;
  /** ms since `viewFrom` last heard from it; 0 for `viewFrom` itself, null when never. */
  readonly lastContactMs: number | null;
  /**
   * False when the leader has not heard from it within an election timeout, or this node has no connection to it;
   * null for itself, or when that cannot be judged (no leader answered, and this node's connection is up).
   */
  readonly reachable: boolean | null;
}

/** GET /cluster/status: DESIGN §7 plus lag, reachability, recent leadership changes and task runs. */
export interface ClusterStatusReport {
  readonly nodeId: string;
  /** The consensus engine: the embedded Raft group or etcd. */
  readonly backend: BackendKind;
  /** The members replicate one log from the leader: match index, lag and last contact describe them. */
  readonly replicatedLog: boolean;
  /** On etcd: its endpoints, which of them leads etcd, and the app nodes present (their leases). */
  readonly etcd?: EtcdView;
  /** follower, pre-candidate, candidate or leader. */
  readonly role: string;
  readonly isLeader: boolean;
  /** null while no leader is known. */
  readonly leaderId: string | null;
  readonly term: number;
  /** This node leads with a lease a quorum confirmed. */
  readonly leaseValid: boolean;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  /**
   * Whose replication view the members' matchIndex, lag and lastContactMs show: the leader's (fetched from it when
   * this node follows), or this node's own when no leader answered (then matchIndex and lag are null).
   */
  readonly viewFrom: string;
  readonly members: readonly MemberReport[];
  /** A membership change appended to the log and not yet committed (its log index), or null. */
  readonly membershipChange: { readonly index: number } | null;
  /** Committed membership changes (joins, promotions, removals), newest first, as this node saw them. */
  readonly membershipChanges: readonly MembershipEvent[];
  /** Newest first, as this node saw them. */
  readonly leadershipChanges: readonly LeadershipChange[];
  /** Latest singleton task runs from the replicated ledger, newest first. */
  readonly tasks: readonly TaskRun[];
  /** This node's wall clock (ms) when the report was made: ages on the page are measured against it. */
  readonly time: number;
}

/** The leader's view of replication, which a follower asks the leader for. */
export interface ReplicationView {
  readonly leaderId: string;
  readonly lastIndex: number;
  readonly members: readonly { readonly id: string; readonly matchIndex: number | null; readonly lastContactMs: number | null }[];
}

export function replicationViewOf(s: RuntimeStatus): ReplicationView {
  return {
    leaderId: s.nodeId,
    lastIndex: s.lastIndex,
    members: s.members.map((m) => ({ id: m.id, matchIndex: m.matchIndex, lastContactMs: m.lastContactMs })),
  };
}

export interface ReportInputs {
  readonly status: BackendStatus;
  /** The leader's view; null when this node follows and the leader did not answer (or none is known). */
  readonly view: ReplicationView | null;
  readonly connected: (id: string) => boolean | null;
  readonly electionTimeoutMs: number;
  readonly leadershipChanges: readonly LeadershipChange[];
  readonly membershipChanges: readonly MembershipEvent[];
  readonly tasks: readonly TaskRun[];
  readonly time: number;
}

export function buildStatusReport(i: ReportInputs): ClusterStatusReport {
  const s = i.status;
  const view = i.view ? new Map(i.view.members.map((m) => [m.id, m])) : null;
  const members = s.members.map((m): MemberReport => {
    const isSelf = m.id === s.nodeId;
    const connected = isSelf ? null : i.connected(m.id);
    const seen = view?.get(m.id);
    const matchIndex = seen?.matchIndex ?? null;
    const lastContactMs = view ? (seen?.lastContactMs ?? null) : m.lastContactMs;
    // A follower talks to the leader, not to other followers: only the leader's view says whether one is silent.
    const silent = view !== null && (lastContactMs === null || lastContactMs > i.electionTimeoutMs);
    return {
      id: m.id,
      address: m.address,
      isSelf,
      role: isSelf ? s.role : !s.leaderId ? 'unknown' : m.id === s.leaderId ? 'leader' : 'follower',
      membership: m.membership,
      connected,
      matchIndex,
      lag: i.view && matchIndex !== null ? Math.max(0, i.view.lastIndex - matchIndex) : null,
      lastContactMs,
      reachable: isSelf ? null : connected === false || silent ? false : view ? true : null,
    };
  });
  return {
    nodeId: s.nodeId,
    backend: s.backend,
    replicatedLog: s.replicatedLog,
    ...(s.etcd ? { etcd: s.etcd } : {}),
    role: s.role,
    isLeader: s.isLeader,
    leaderId: s.leaderId || null,
    term: s.term,
    leaseValid: s.leaseValid,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    snapshotIndex: s.snapshotIndex,
    lastIndex: s.lastIndex,
    viewFrom: i.view?.leaderId ?? s.nodeId,
    members,
    membershipChange: s.membershipChange,
    membershipChanges: i.membershipChanges,
    leadershipChanges: i.leadershipChanges,
    tasks: i.tasks,
    time: i.time,
  };
}
