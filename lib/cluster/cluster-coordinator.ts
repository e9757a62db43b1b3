import { setMaxListeners } from 'node:events';
import { BehaviorSubject, type Observable } from 'rxjs';
import type { MemberRole, NodeId } from '../raft/index.js';
import { fromWire, type ClusterStore, type Proposer } from './cluster-store.js';
import { ClusterMembership, type MembershipEvent, type NewMember } from './cluster-membership.js';
import { ClusterStoppedError, MembershipChangeError, NoLeaderException, NotLeaderException } from './errors.js';
import type { Clock, Timers } from '../io/clock.js';
import type { Network } from '../io/network.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, type LeadershipState, type RaftRuntime, type RuntimeStatus } from './raft-runtime.js';
import type { AppRequestHandler, RequestRouter } from './request-handler.js';
import { decodeReply, encodeRequest } from './rpc.js';
import type { ClusterStateMachine } from './state/cluster-state-machine.js';
import { ClusterLocks } from './distributed-lock.js';
import { EventDelivery, type DeliveryCursor, type EventSink } from './event-delivery.js';
import { TaskLedger } from './task-ledger.js';
import { pauseUntilLeaderElected } from './leader-wait.js';
import { silentLogger, type ClusterLogger } from './logger.js';

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
  constructor(views: readonly MemberView[], ops: ClusterMembership) {
    super();
    this.push(...views);
    Object.defineProperty(this, 'ops', { value: ops, enumerable: false });
  }

  private declare readonly ops: ClusterMembership;

  /** Adds a node that is already running (started with `join`, or with no member list): a learner by default. */
  add(member: NewMember): Promise<void> {
    return this.ops.add(member);
  }

  /** Removes a member; the leader hands leadership over first when it is the one to go. */
  remove(id: NodeId): Promise<void> {
    return this.ops.remove(id);
  }

  /** Makes a caught-up learner a voter (waits, bounded, for it to catch up). */
  promote(id: NodeId): Promise<void> {
    return this.ops.promote(id);
  }

  /** Makes a voter a learner. */
  demote(id: NodeId): Promise<void> {
    return this.ops.demote(id);
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

export interface CoordinatorParts {
  readonly runtime: RaftRuntime;
  readonly network: Network;
  readonly router: RequestRouter;
  readonly stateMachine: ClusterStateMachine;
  readonly proposer: Proposer;
  readonly store: ClusterStore;
  readonly clock: Clock;
  readonly timers: Timers;
  /** Default: membership changes through the API only (no joining, no automatic replacement), 3 target voters. */
  readonly membership?: ClusterMembership;
  /** A graceful stop removes this node from the membership first. */
  readonly leaveOnShutdown?: boolean;
  readonly electionTimeoutMs: number;
  /** Unique per process start (lock requests are told apart by it); default: node id and start time. */
  readonly clientId?: string;
  /** Wall-clock ms for the leadership history; default Date.now. */
  readonly wallClock?: () => number;
  /** Peers this node has a live, authenticated connection to; omitted without a transport (a single member). */
  readonly connectedPeers?: () => ReadonlySet<NodeId>;
  /** Where this node remembers the last cluster event it delivered (a file in the dataDir). */
  readonly eventCursor: DeliveryCursor;
  readonly logger?: ClusterLogger;
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
  private readonly events: EventDelivery;
  private readonly membership: ClusterMembership;
  private readonly subject: BehaviorSubject<LeadershipState>;
  /** Leadership changes, starting with the current state. */
  readonly leadership$: Observable<LeadershipState>;
  /** Aborted when this node's current tenure as leader ends; null while it is not a leader with a valid lease. */
  private tenure: AbortController | null = null;
  private stopped = false;
  /** Oldest first, at most LEADERSHIP_HISTORY. */
  private readonly history: LeadershipChange[] = [];

  constructor(private readonly parts: CoordinatorParts) {
    this.store = parts.store;
    this.clock = parts.clock;
    this.clientId = parts.clientId ?? `${parts.runtime.nodeId}@${Date.now().toString(36)}`;
    this.locks = new ClusterLocks({
      proposer: parts.proposer,
      table: parts.stateMachine.locks,
      clock: parts.clock,
      timers: parts.timers,
      owner: this.clientId,
    });
    this.tasks = new TaskLedger(parts.proposer, parts.stateMachine.tasks, parts.runtime.nodeId, {
      term: () => parts.runtime.leadership.term,
      leaderSignal: () => this.leaderSignal(),
    });
    this.membership =
      parts.membership ??
      new ClusterMembership({
        runtime: parts.runtime,
        network: parts.network,
        clock: parts.clock,
        timers: parts.timers,
        logger: parts.logger ?? silentLogger,
        electionTimeoutMs: parts.electionTimeoutMs,
        requestTimeoutMs: parts.runtime.config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        targetVoters: 3,
        autoRemoveAfterMs: null,
        self: { address: '', role: 'voter' },
        join: [],
        wallClock: parts.wallClock ?? Date.now,
      });
    parts.router.membership = this.membership.handle;
    this.events = new EventDelivery(parts.stateMachine.events, parts.eventCursor, parts.timers, parts.logger ?? silentLogger);
    this.subject = new BehaviorSubject(parts.runtime.leadership);
    this.leadership$ = this.subject.asObservable();
    parts.runtime.onLeadershipChange((s) => {
      if (!s.isLeader) this.endTenure();
      this.recordLeadership(s);
      this.subject.next(s);
    });
    parts.runtime.onLeaseChange((valid) => {
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
    await this.parts.runtime.start();
    this.membership.start();
  }

  /** Committed membership changes (joins, promotions, removals) as this node saw them, newest first. */
  membershipHistory(): readonly MembershipEvent[] {
    return this.membership.changes();
  }

  get nodeId(): NodeId {
    return this.parts.runtime.nodeId;
  }

  get isLeader(): boolean {
    return this.parts.runtime.leadership.isLeader;
  }

  /** False once stop() was called, or once the node halted by itself (its storage failed). */
  get isRunning(): boolean {
    return !this.stopped && this.parts.runtime.isRunning;
  }

  /** The leader's id, or null while none is known. */
  get leaderId(): NodeId | null {
    return this.parts.runtime.leadership.leaderId || null;
  }

  get term(): number {
    return this.parts.runtime.leadership.term;
  }

  get members(): MemberList {
    const leader = this.leaderId;
    const views = this.membership.current.members.map(
      (m): MemberView => ({ id: m.id, address: m.address, membership: m.role, isLeader: m.id === leader, isSelf: m.id === this.nodeId }),
    );
    return new MemberList(views, this.membership);
  }

  /** True while this node leads with a lease a quorum confirmed; no other node can be leading meanwhile. */
  hasLease(): boolean {
    return this.parts.runtime.hasValidLease();
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
    return pauseUntilLeaderElected(this.parts.runtime, this.parts.timers, ms);
  }

  /** Resolves with the leader's id once one is known (and, when it is this node, once its lease is valid). */
  waitForLeader(opts: { timeout?: number } = {}): Promise<NodeId> {
    const timeout = opts.timeout ?? 5000;
    const deadline = this.parts.clock.now() + timeout;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.stopped) return reject(new ClusterStoppedError());
        const id = this.leaderId;
        if (id && (id !== this.nodeId || this.hasLease())) return resolve(id);
        if (this.parts.clock.now() >= deadline) return reject(new NoLeaderException(`no leader within ${timeout} ms`));
        this.parts.timers.setTimeout(check, 5);
      };
      check();
    });
  }

  /**
   * Moves leadership to `to` (or the most up-to-date follower) and resolves once another node leads. Works from any
   * node: a follower asks the leader.
   */
  async transferLeadership(to?: NodeId): Promise<void> {
    const timeoutMs = this.parts.electionTimeoutMs * 4;
    const before = this.parts.runtime.leadership;
    const learner = to ? this.membership.current.members.find((m) => m.id === to && m.role === 'learner') : undefined;
    if (learner) throw new MembershipChangeError(`cannot transfer leadership to ${to}: it is a learner, which never leads; promote it first`);
    if (before.isLeader) {
      if (!this.parts.runtime.transferLeadership(to)) throw new Error(`cannot transfer leadership to ${to ?? 'a follower'}: not a voting member`);
    } else {
      const leader = before.leaderId;
      if (!leader) throw new NoLeaderException();
      const reply = decodeReply(await this.parts.network.call(leader, encodeRequest({ kind: 'transfer', to: to ?? null }), timeoutMs));
      if (!reply.ok) throw fromWire(reply.error);
      if (reply.value === null) throw new NotLeaderException(leader, `${leader} could not start a transfer to ${to ?? 'a follower'}`);
    }
    const deadline = this.parts.clock.now() + timeoutMs;
    while (this.parts.clock.now() < deadline) {
      const now = this.parts.runtime.leadership;
      if (now.leaderId && now.leaderId !== before.leaderId && (!to || now.leaderId === to)) return;
      await new Promise<void>((r) => this.parts.timers.setTimeout(r, 5));
    }
    const s = this.parts.runtime.status();
    throw new Error(
      `leadership did not move within ${timeoutMs} ms (${s.nodeId} is ${s.role}; leader ${s.leaderId || "unknown"}, term ${s.term}, ` +
        `members ${s.members.map((m) => `${m.id}:${m.matchIndex ?? '?'}`).join(' ')}, last index ${s.lastIndex})`,
    );
  }

  /**
   * Confirms with a quorum (a ReadIndex round) that this node still leads, and that its state machine has applied
   * everything committed before the call. Throws NotLeaderException otherwise.
   */
  async confirmLeadership(): Promise<void> {
    if (!this.isLeader) throw new NotLeaderException(this.leaderId ?? '');
    await this.parts.runtime.readBarrier(this.parts.electionTimeoutMs * 4);
    if (!this.isLeader) throw new NotLeaderException(this.leaderId ?? '');
  }

  /** Serves requests other members send on `channel` (see requestLeader). */
  onRequest(channel: string, handler: AppRequestHandler): void {
    this.parts.router.register(channel, handler);
  }

  /**
   * Sends `body` to the current leader's handler for `channel` and returns its answer. Throws NoLeaderException when
   * no leader is known, NotSentError when it surely did not arrive, CallTimeoutError/ConnectionLostError when the
   * outcome is unknown, and the handler's error (as a plain Error with its name) otherwise.
   */
  async requestLeader(channel: string, body: unknown, timeoutMs: number): Promise<{ leaderId: NodeId; value: unknown }> {
    const leaderId = this.leaderId;
    if (!leaderId) throw new NoLeaderException();
    const reply = decodeReply(await this.parts.network.call(leaderId, encodeRequest({ kind: 'app', channel, body }), timeoutMs));
    if (!reply.ok) throw fromWire(reply.error);
    return { leaderId, value: reply.value };
  }

  /** Publishes a cluster-wide event: it is committed to the log and then delivered on every node in log order. */
  async publishEvent(name: string, payload: unknown): Promise<{ index: number }> {
    return (await this.parts.proposer.propose('event', { name, payload })) as { index: number };
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

  status(): RuntimeStatus {
    return this.parts.runtime.status();
  }

  /** Recent leadership changes as this node saw them, newest first: each new leader, and each loss of one. */
  leadershipHistory(): readonly LeadershipChange[] {
    return [...this.history].reverse();
  }

  /** Whether this node has a live, authenticated connection to `peer`; null for itself or without a transport. */
  isConnectedTo(peer: NodeId): boolean | null {
    if (peer === this.nodeId || !this.parts.connectedPeers) return null;
    return this.parts.connectedPeers().has(peer);
  }

  /** Stops this node; a leader hands over first. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.parts.leaveOnShutdown) await this.membership.leave();
    this.membership.stop();
    await this.parts.runtime.stop();
    this.endTenure();
    await this.events.flush();
    this.subject.complete();
  }

  /** Elections without a leader yet (term bumps while none is known) are folded into the preceding loss. */
  private recordLeadership(s: LeadershipState): void {
    const last = this.history[this.history.length - 1];
    if (!s.leaderId && (!last || last.leaderId === null)) return;
    if (last && last.leaderId === (s.leaderId || null) && last.term === s.term) return;
    this.history.push({ term: s.term, leaderId: s.leaderId || null, at: (this.parts.wallClock ?? Date.now)() });
    if (this.history.length > LEADERSHIP_HISTORY) this.history.shift();
  }

  private endTenure(): void {
    this.tenure?.abort(new NotLeaderException(this.leaderId ?? '', 'this node stopped leading'));
    this.tenure = null;
  }
}
