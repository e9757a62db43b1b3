import { setMaxListeners } from 'node:events';
import { BehaviorSubject, type Observable } from 'rxjs';
import type { MemberRole, NodeId } from '../raft/index.js';
import type { BackendStatus, ClusterBackend, ClusterLocks, ClusterStore, LeadershipState, MembershipOps } from './backend.js';
import type { MembershipEvent, NewMember } from './cluster-membership.js';
import { ClusterStoppedError, MembershipChangeError, NoLeaderException, NotLeaderException } from './errors.js';
import type { Clock } from '../io/clock.js';
import type { AppRequestHandler } from './request-handler.js';
import { EmbeddedBackend, type EmbeddedParts } from './embedded/embedded-backend.js';
import { EventDelivery, type DeliveryCursor, type EventSink } from './event-delivery.js';
import { TaskLedger } from './task-ledger.js';
import { pauseUntilLeaderElected } from './leader-wait.js';

export interface ClusterMember {
  readonly id: NodeId;
  /** host:port of its cluster listener. */
  readonly address: string;
}

export interface MemberView extends ClusterMember {
  readonly isLeader: boolean;
  readonly isSelf: boolean;
  /** A voter counts toward elections and commits; a learner replicates and serves reads. */
  readonly membership: MemberRole;
}

/**
 * `coordinator.members`: the members as this node knows them (a plain array of MemberView), plus the changes. Each
 * change works from any node (a follower asks the leader), is one server at a time, and resolves once committed.
 */
export class MemberList extends Array<MemberView> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array; // map/filter give plain arrays
  }

  /** @internal Made by the coordinator. */
  constructor(views: readonly MemberView[], ops: MembershipOps | null) {
    super();
    this.push(...views);
    Object.defineProperty(this, 'ops', { value: ops, enumerable: false });
  }

  private declare readonly ops: MembershipOps | null;

  private get changes(): MembershipOps {
    if (!this.ops) throw new MembershipChangeError('this backend has no membership changes: on etcd, nodes join and leave by their session lease');
    return this.ops;
  }

  /** Adds a node that is already running (started with `join`, or with no member list): a learner by default. */
  add(member: NewMember): Promise<void> {
    return this.changes.add(member);
  }

  /** Removes a member; the leader hands leadership over first when it is the one to go. */
  remove(id: NodeId): Promise<void> {
    return this.changes.remove(id);
  }

  /** Makes a caught-up learner a voter (waits, bounded, for it to catch up). */
  promote(id: NodeId): Promise<void> {
    return this.changes.promote(id);
  }

  /** Makes a voter a learner. */
  demote(id: NodeId): Promise<void> {
    return this.changes.demote(id);
  }
}

/** A leadership change as this node saw it. */
export interface LeadershipChange {
  readonly term: number;
  /** null: this node lost its leader (an election is under way). */
  readonly leaderId: NodeId | null;
  /** Wall-clock ms when this node saw the change. */
  readonly at: number;
}

/** Leadership changes kept for status pages. */
const LEADERSHIP_HISTORY = 20;

/** The embedded backend's parts, with where this node remembers the last cluster event it delivered. */
export interface CoordinatorParts extends EmbeddedParts {
  /** Where this node remembers the last cluster event it delivered (a file in the dataDir). */
  readonly eventCursor: DeliveryCursor;
}

/** A coordinator on any backend. */
export interface BackendParts {
  readonly backend: ClusterBackend;
  readonly eventCursor: DeliveryCursor;
}

export type { LeadershipState };

/**
 * The cluster as application code sees it, with or without Nest: who leads, leadership changes, leader-only
 * execution, the replicated store. One per node.
 */
export class ClusterCoordinator {
  readonly store: ClusterStore;
  /** Leased locks with fencing tokens: `await cluster.locks.acquire('invoices', { ttl, wait })`. */
  readonly locks: ClusterLocks;
  /** The replicated ledger of singleton task runs, and `runOnce` for leader-only work. */
  readonly tasks: TaskLedger;
  /** Monotonic ms: the clock leases and request deadlines are measured on here. */
  readonly clock: Clock;
  /** Unique per process start: requests from this node are told apart by it. */
  readonly clientId: string;
  /** @internal The consensus engine underneath: the embedded Raft group or etcd. */
  readonly backend: ClusterBackend;
  private readonly events: EventDelivery;
  private readonly subject: BehaviorSubject<LeadershipState>;
  /** Leadership changes, starting with the current state. */
  readonly leadership$: Observable<LeadershipState>;
  /** Aborted when this node's current tenure as leader ends; null while it is not a leader with a valid lease. */
  private tenure: AbortController | null = null;
  private stopped = false;
  /** Oldest first, at most LEADERSHIP_HISTORY. */
  private readonly history: LeadershipChange[] = [];

  constructor(parts: CoordinatorParts | BackendParts) {
    const backend = 'backend' in parts ? parts.backend : new EmbeddedBackend(parts);
    this.backend = backend;
    this.store = backend.store;
    this.locks = backend.locks;
    this.clock = backend.clock;
    this.clientId = backend.clientId;
    this.tasks = new TaskLedger(backend.tasks, backend.nodeId, {
      term: () => backend.leadership.term,
      leaderSignal: () => this.leaderSignal(),
    });
    this.events = new EventDelivery(backend.events, parts.eventCursor, backend.timers, backend.logger);
    this.subject = new BehaviorSubject(backend.leadership);
    this.leadership$ = this.subject.asObservable();
    backend.onLeadershipChange((s) => {
      if (!s.isLeader) this.endTenure();
      this.recordLeadership(s);
      this.subject.next(s);
    });
    backend.onLeaseChange((valid) => {
      if (valid && !this.tenure) {
        this.tenure = new AbortController();
        // One signal for every piece of leader work of this tenure (each singleton run, a backlog of fires): many
        // listeners are its purpose, not a leak.
        setMaxListeners(0, this.tenure.signal);
      }
      if (!valid) this.endTenure();
    });
  }

  /** Reads this node's event cursor, then starts the node: recovers its log and joins the others. */
  async start(): Promise<void> {
    await this.events.load();
    await this.backend.start();
  }

  /** Committed membership changes (joins, promotions, removals) as this node saw them, newest first. */
  membershipHistory(): readonly MembershipEvent[] {
    return this.backend.membershipHistory();
  }

  get nodeId(): NodeId {
    return this.backend.nodeId;
  }

  get isLeader(): boolean {
    return this.backend.leadership.isLeader;
  }

  /** False once stop() was called, or once the node halted by itself (its storage failed). */
  get isRunning(): boolean {
    return !this.stopped && this.backend.isRunning;
  }

  /** The leader's id, or null while none is known. */
  get leaderId(): NodeId | null {
    return this.backend.leadership.leaderId || null;
  }

  get term(): number {
    return this.backend.leadership.term;
  }

  get members(): MemberList {
    const leader = this.leaderId;
    const views = this.backend
      .members()
      .map((m): MemberView => ({ id: m.id, address: m.address, membership: m.membership, isLeader: m.id === leader, isSelf: m.id === this.nodeId }));
    return new MemberList(views, this.backend.membership);
  }

  /** True while this node leads with a lease a quorum confirmed; no other node can be leading meanwhile. */
  hasLease(): boolean {
    return this.backend.hasValidLease();
  }
  /**
   * The signal of this node's current tenure as leader: it aborts when the lease lapses, leadership moves, or the node
   * stops. Null when this node is not leading with a valid lease.
   */
  leaderSignal(): AbortSignal | null {
    return this.hasLease() ? (this.tenure?.signal ?? null) : null;
  }

  /**
   * Runs `fn` if this node is the leader with a valid lease, passing a signal that aborts when leadership is lost.
   * Returns false without running it otherwise.
   */
  async executeIfLeader(fn: (signal: AbortSignal) => Promise<unknown> | unknown): Promise<boolean> {
    const signal = this.leaderSignal();
    if (!signal) return false;
    await fn(signal);
    return true;
  }

  /** Resolves after `ms`, or sooner when a leader is elected: for retry loops that wait for somewhere to send to. */
  pauseUntilLeaderElected(ms: number): Promise<void> {
    return pauseUntilLeaderElected(this.backend, this.backend.timers, ms);
  }

  /** Resolves with the leader's id once one is known (and, when it is this node, once its lease is valid). */
  waitForLeader(opts: { timeout?: number } = {}): Promise<NodeId> {
    const timeout = opts.timeout ?? 5000;
    const { clock, timers } = this.backend;
    const deadline = clock.now() + timeout;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.stopped) return reject(new ClusterStoppedError());
        const id = this.leaderId;
        if (id && (id !== this.nodeId || this.hasLease())) return resolve(id);
        if (clock.now() >= deadline) return reject(new NoLeaderException(`no leader within ${timeout} ms`));
        timers.setTimeout(check, 5);
      };
      check();
    });
  }

  /**
   * Moves leadership to `to` (or the most up-to-date follower) and resolves once another node leads. Works from any
   * node: a follower asks the leader.
   */
  transferLeadership(to?: NodeId): Promise<void> {
    return this.backend.transferLeadership(to);
  }

  /**
   * Confirms with a quorum (a ReadIndex round) that this node still leads, and that its state machine has applied
   * everything committed before the call. Throws NotLeaderException otherwise.
   */
  async confirmLeadership(): Promise<void> {
    if (!this.isLeader) throw new NotLeaderException(this.leaderId ?? '');
    await this.backend.readBarrier(this.backend.confirmTimeoutMs);
    if (!this.isLeader) throw new NotLeaderException(this.leaderId ?? '');
  }

  /** Serves requests other members send on `channel` (see requestLeader). */
  onRequest(channel: string, handler: AppRequestHandler): void {
    this.backend.onRequest(channel, handler);
  }

  /**
   * Sends `body` to the current leader's handler for `channel` and returns its answer. Throws NoLeaderException when
   * no leader is known, NotSentError when it surely did not arrive, CallTimeoutError/ConnectionLostError when the
   * outcome is unknown, and the handler's error (as a plain Error with its name) otherwise.
   */
  requestLeader(channel: string, body: unknown, timeoutMs: number): Promise<{ leaderId: NodeId; value: unknown }> {
    return this.backend.requestLeader(channel, body, timeoutMs);
  }

  /** Publishes a cluster-wide event: it is committed to the log and then delivered on every node in log order. */
  publishEvent(name: string, payload: unknown): Promise<{ index: number }> {
    return this.backend.publishEvent(name, payload);
  }

  /**
   * Starts handing every committed cluster event to `sink`, in log order, at least once on this node (see
   * EventDelivery): first those committed before (since the last one this node delivered, even across restarts),
   * then each as it applies. Call once, when the receiving side is ready. Events dropped from retention before this
   * node delivered them reach `sink.missed` as one gap.
   */
  deliverEvents(sink: EventSink): void {
    this.events.start(sink);
  }

  /** Stops delivering cluster events here (the receiving side is going away); the rest come after a restart. */
  stopEventDelivery(): void {
    this.events.close();
  }

  /** Index of the last cluster event this node delivered (or gave up on after a gap notice). */
  get eventPosition(): number {
    return this.events.position;
  }

  /** Who leads, how far this node is, the members; and which backend runs (with etcd's view on etcd). */
  status(): BackendStatus {
    return this.backend.status();
  }

  /** What to check when no leader has been known for a while (the startup warning says it). */
  leaderlessHint(): string {
    return this.backend.leaderlessHint();
  }

  /** status(), after refreshing what needs a round trip (on etcd: each endpoint's status and the nodes' leases). */
  async refreshStatus(): Promise<BackendStatus> {
    await this.backend.refreshStatus();
    return this.backend.status();
  }

  /** Recent leadership changes as this node saw them, newest first: each new leader, and each loss of one. */
  leadershipHistory(): readonly LeadershipChange[] {
    return [...this.history].reverse();
  }

  /** Whether this node has a live, authenticated connection to `peer`; null for itself or without a transport. */
  isConnectedTo(peer: NodeId): boolean | null {
    return this.backend.isConnectedTo(peer);
  }

  /** Stops this node; a leader hands over first. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.backend.stop();
    this.endTenure();
    await this.events.flush();
    this.subject.complete();
  }

  /** Elections without a leader yet (term bumps while none is known) are folded into the preceding loss. */
  private recordLeadership(s: LeadershipState): void {
    const last = this.history[this.history.length - 1];
    if (!s.leaderId && (!last || last.leaderId === null)) return;
    if (last && last.leaderId === (s.leaderId || null) && last.term === s.term) return;
    this.history.push({ term: s.term, leaderId: s.leaderId || null, at: this.backend.wallClock() });
    if (this.history.length > LEADERSHIP_HISTORY) this.history.shift();
  }

  private endTenure(): void {
    this.tenure?.abort(new NotLeaderException(this.leaderId ?? '', 'this node stopped leading'));
    this.tenure = null;
  }
}
