/**
 * The seam between ClusterCoordinator (and everything in lib/nest above it) and the engine that provides consensus:
 * the embedded Raft group (lib/cluster/embedded) or an etcd cluster (lib/cluster/etcd). The coordinator owns what is
 * the same for both (leadership$ and its history, the tenure signal, event delivery, the task runner); a backend
 * owns who leads, how long that is sure, where requests go, and where data lives.
 */
import type { NodeId } from '../raft/index.js';
import type { Clock, Timers } from '../io/clock.js';
import type { MemberRole } from '../raft/index.js';
import type { CasResult, ReadConsistency, StoreEntry, WriteResult } from './cluster-store.js';
import type { LockAcquireOptions, DistributedLock } from './distributed-lock.js';
import type { MembershipEvent, NewMember } from './cluster-membership.js';
import type { AppRequestHandler } from './request-handler.js';
import type { CommittedEvent } from './state/event-log-module.js';
import type { TaskRun, TaskStartResult } from './state/task-ledger-module.js';
import type { ClusterLogger } from './logger.js';

export type BackendKind = 'embedded' | 'etcd';

export interface LeadershipState {
  readonly isLeader: boolean;
  /** '' while no leader is known. */
  readonly leaderId: NodeId;
  /** The tenure number: the Raft term, or on etcd the create revision of the leader's election key. */
  readonly term: number;
}

/** Leadership as retry loops and the coordinator follow it. */
export interface LeadershipSource {
  readonly leadership: LeadershipState;
  /** Called on every change; returns a function that stops the calls. */
  onLeadershipChange(fn: (s: LeadershipState) => void): () => void;
  /** Called when this node's lease as leader becomes valid or lapses. */
  onLeaseChange(fn: (valid: boolean) => void): () => void;
}

/** `cluster.store`: the replicated key-value store. Writes from any node; reads local or linearizable. */
export interface ClusterStore {
  get<T = unknown>(key: string, opts?: { consistency?: ReadConsistency }): Promise<StoreEntry<T> | undefined>;
  put(key: string, value: unknown): Promise<WriteResult>;
  delete(key: string): Promise<WriteResult>;
  /** Writes `value` only if the key's version is `expectedVersion` (0: only if absent). */
  cas(key: string, expectedVersion: number, value: unknown): Promise<CasResult>;
}

/** `cluster.locks`: leased locks with fencing tokens, usable from any node. */
export interface ClusterLocks {
  /**
   * Acquires `name`, waiting in a fair (FIFO) queue for up to `wait` ms. The returned lock renews itself until
   * released; its `signal` aborts once the lease can no longer be relied on. Throws LockTimeoutException when not
   * acquired in time.
   */
  acquire(name: string, opts?: LockAcquireOptions): Promise<DistributedLock>;
}

/** The replicated record of singleton task runs, as TaskLedger drives it. */
export interface TaskRecords {
  /** Recorded runs, newest fire time first, from this node's copy. */
  runs(task?: string): readonly TaskRun[];
  latest(task: string): TaskRun | undefined;
  /**
   * Records the start of `task`'s run for `fireTime` as this node, leader of tenure `term`; `started` is false when
   * the fire time was recorded before or the tenure is over. Throws NotLeaderException when this node does not lead.
   */
  start(task: string, fireTime: number, node: NodeId, term: number): Promise<TaskStartResult>;
  /** Records a fire time that was deliberately not run. */
  skip(task: string, fireTime: number, node: NodeId): Promise<void>;
  finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string, token?: number): Promise<void>;
}

/** Committed cluster events on this node, in order: what EventDelivery drains. */
export interface EventSource {
  /** The newest event index dropped from retention (0: none). */
  readonly evictedUpTo: number;
  /** Kept events with an index above `index`, oldest first. */
  after(index: number): CommittedEvent[];
  /** Called whenever events arrive or are dropped. */
  onChange(fn: () => void): void;
}

/** A member as this node knows it. */
export interface BackendMember {
  readonly id: NodeId;
  /** host:port where it takes requests from other nodes. */
  readonly address: string;
  readonly membership: MemberRole;
}

/** Membership changes; null on a backend where nodes register themselves (etcd: by their session lease). */
export interface MembershipOps {
  add(member: NewMember): Promise<void>;
  remove(id: NodeId): Promise<void>;
  promote(id: NodeId): Promise<void>;
  demote(id: NodeId): Promise<void>;
}

export interface MemberStatus {
  readonly id: NodeId;
  readonly address: string;
  readonly role: 'leader' | 'follower' | 'self';
  readonly membership: MemberRole;
  /** Highest log index known to be on that member (leader's view; null elsewhere and on etcd). */
  readonly matchIndex: number | null;
  /** ms since a message from it arrived; null when never or unknown, 0 for this node. */
  readonly lastContactMs: number | null;
}

/** What an etcd backend adds to the status: the etcd cluster and the app nodes registered in it. */
export interface EtcdView {
  readonly prefix: string;
  readonly endpoints: readonly {
    readonly url: string;
    readonly name: string | null;
    readonly memberId: string | null;
    readonly isLeader: boolean;
    readonly reachable: boolean;
    readonly raftTerm: number | null;
    readonly revision: number | null;
    readonly version: string | null;
    readonly error?: string;
  }[];
  /** The client URL of etcd's own Raft leader, when known. */
  readonly leaderEndpoint: string | null;
  /** App nodes present now: each holds a session lease. */
  readonly nodes: readonly { readonly id: NodeId; readonly address: string; readonly leaseId: string; readonly ttlLeftS: number | null }[];
  /** Wall-clock ms of the last refresh. */
  readonly checkedAt: number;
}

export interface RuntimeStatus {
  readonly nodeId: NodeId;
  readonly role: string;
  readonly isLeader: boolean;
  readonly leaderId: NodeId;
  readonly term: number;
  /** On etcd: the newest etcd revision this node has seen. */
  readonly commitIndex: number;
  /** On etcd: the revision this node's copies (task ledger, events) have caught up to. */
  readonly appliedIndex: number;
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  readonly leaseValid: boolean;
  readonly members: readonly MemberStatus[];
  /** A configuration change appended but not yet committed (as far as this node knows). */
  readonly membershipChange: { readonly index: number } | null;
}

export interface BackendStatus extends RuntimeStatus {
  readonly backend: BackendKind;
  /**
   * The members replicate one log from the leader, so the leader's view of each one's progress (match index, last
   * contact) means something; false on etcd, which replicates the data itself.
   */
  readonly replicatedLog: boolean;
  readonly etcd?: EtcdView;
}

/** One consensus engine behind a ClusterCoordinator. */
export interface ClusterBackend extends LeadershipSource {
  readonly kind: BackendKind;
  readonly nodeId: NodeId;
  /** Unique per process start: requests from this node are told apart by it. */
  readonly clientId: string;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  /** Wall-clock ms, for histories. */
  readonly wallClock: () => number;
  /** False once stopped, or once the backend halted by itself (its storage failed). */
  readonly isRunning: boolean;
  /** Leads, and its lease is valid now (read from the clock, never a cached flag). */
  hasValidLease(): boolean;
  /**
   * Confirms that this node still leads and that its local copies (store, task ledger) hold everything committed
   * before the call. Throws NotLeaderException otherwise.
   */
  readBarrier(timeoutMs: number): Promise<void>;
  /** How long confirmLeadership() waits for readBarrier. */
  readonly confirmTimeoutMs: number;
  /** Moves leadership to `to` (or whoever is next) and resolves once another node leads. */
  transferLeadership(to: NodeId | undefined): Promise<void>;

  /** Serves requests other nodes send on `channel`. */
  onRequest(channel: string, handler: AppRequestHandler): void;
  /** Sends `body` to the leader's handler for `channel`; see ClusterCoordinator.requestLeader for the errors. */
  requestLeader(channel: string, body: unknown, timeoutMs: number): Promise<{ leaderId: NodeId; value: unknown }>;
  /** Whether this node has a live, authenticated connection to `peer`; null for itself or when unknown. */
  isConnectedTo(peer: NodeId): boolean | null;

  readonly store: ClusterStore;
  readonly locks: ClusterLocks;
  readonly tasks: TaskRecords;
  publishEvent(name: string, payload: unknown): Promise<{ index: number }>;
  readonly events: EventSource;

  members(): readonly BackendMember[];
  readonly membership: MembershipOps | null;
  membershipHistory(): readonly MembershipEvent[];

  status(): BackendStatus;
  /** What to check when no leader is known for a while: a sentence for the startup warning. */
  leaderlessHint(): string;
  /** Refreshes what status() reports that needs a round trip (etcd's endpoints); a no-op where nothing does. */
  refreshStatus(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
