import type { NodeId } from '../../raft/index.js';
import type { Clock, Timers } from '../../io/clock.js';
import type { Network } from '../../io/network.js';
import type {
  BackendMember,
  BackendStatus,
  ClusterBackend,
  ClusterLocks as LockService,
  ClusterStore,
  EventSource,
  LeadershipState,
  MembershipOps,
} from '../backend.js';
import { fromWire, type Proposer } from '../cluster-store.js';
import { ClusterMembership, type MembershipEvent } from '../cluster-membership.js';
import { ClusterLocks } from '../distributed-lock.js';
import { MembershipChangeError, NoLeaderException, NotLeaderException } from '../errors.js';
import { silentLogger, type ClusterLogger } from '../logger.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, type RaftRuntime } from '../raft-runtime.js';
import type { AppRequestHandler, RequestRouter } from '../request-handler.js';
import { decodeReply, encodeRequest } from '../rpc.js';
import type { ClusterStateMachine } from '../state/cluster-state-machine.js';
import { LogTaskRecords } from './log-task-records.js';

export interface EmbeddedParts {
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
  readonly logger?: ClusterLogger;
}

/** The embedded Raft group as a ClusterBackend: the runtime, its log-backed state and the cluster transport. */
export class EmbeddedBackend implements ClusterBackend {
  readonly kind = 'embedded' as const;
  readonly clientId: string;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly wallClock: () => number;
  readonly store: ClusterStore;
  readonly locks: LockService;
  readonly tasks: LogTaskRecords;
  readonly events: EventSource;
  private readonly group: ClusterMembership;

  constructor(private readonly parts: EmbeddedParts) {
    this.clock = parts.clock;
    this.timers = parts.timers;
    this.logger = parts.logger ?? silentLogger;
    this.wallClock = parts.wallClock ?? Date.now;
    this.clientId = parts.clientId ?? `${parts.runtime.nodeId}@${Date.now().toString(36)}`;
    this.store = parts.store;
    this.locks = new ClusterLocks({
      proposer: parts.proposer,
      table: parts.stateMachine.locks,
      clock: parts.clock,
      timers: parts.timers,
      owner: this.clientId,
    });
    this.tasks = new LogTaskRecords(parts.proposer, parts.stateMachine.tasks);
    this.events = parts.stateMachine.events;
    this.group =
      parts.membership ??
      new ClusterMembership({
        runtime: parts.runtime,
        network: parts.network,
        clock: parts.clock,
        timers: parts.timers,
        logger: this.logger,
        electionTimeoutMs: parts.electionTimeoutMs,
        requestTimeoutMs: parts.runtime.config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        targetVoters: 3,
        autoRemoveAfterMs: null,
        self: { address: '', role: 'voter' },
        join: [],
        wallClock: this.wallClock,
      });
    parts.router.membership = this.group.handle;
  }

  /** The Raft runtime underneath (tests and internal tools reach it through the backend). */
  get runtime(): RaftRuntime {
    return this.parts.runtime;
  }

  get nodeId(): NodeId {
    return this.parts.runtime.nodeId;
  }

  get leadership(): LeadershipState {
    return this.parts.runtime.leadership;
  }

  get isRunning(): boolean {
    return this.parts.runtime.isRunning;
  }

  onLeadershipChange(fn: (s: LeadershipState) => void): () => void {
    return this.parts.runtime.onLeadershipChange(fn);
  }

  onLeaseChange(fn: (valid: boolean) => void): () => void {
    return this.parts.runtime.onLeaseChange(fn);
  }

  hasValidLease(): boolean {
    return this.parts.runtime.hasValidLease();
  }

  get confirmTimeoutMs(): number {
    return this.parts.electionTimeoutMs * 4;
  }

  readBarrier(timeoutMs: number): Promise<void> {
    return this.parts.runtime.readBarrier(timeoutMs);
  }

  async transferLeadership(to: NodeId | undefined): Promise<void> {
    const { runtime, network, clock, timers } = this.parts;
    const timeoutMs = this.parts.electionTimeoutMs * 4;
    const before = runtime.leadership;
    const learner = to ? this.group.current.members.find((m) => m.id === to && m.role === 'learner') : undefined;
    if (learner) throw new MembershipChangeError(`cannot transfer leadership to ${to}: it is a learner, which never leads; promote it first`);
    if (before.isLeader) {
      if (!runtime.transferLeadership(to)) throw new Error(`cannot transfer leadership to ${to ?? 'a follower'}: not a voting member`);
    } else {
      const leader = before.leaderId;
      if (!leader) throw new NoLeaderException();
      const reply = decodeReply(await network.call(leader, encodeRequest({ kind: 'transfer', to: to ?? null }), timeoutMs));
      if (!reply.ok) throw fromWire(reply.error);
      if (reply.value === null) throw new NotLeaderException(leader, `${leader} could not start a transfer to ${to ?? 'a follower'}`);
    }
    const deadline = clock.now() + timeoutMs;
    while (clock.now() < deadline) {
      const now = runtime.leadership;
      if (now.leaderId && now.leaderId !== before.leaderId && (!to || now.leaderId === to)) return;
      await new Promise<void>((r) => timers.setTimeout(r, 5));
    }
    const s = runtime.status();
    throw new Error(
      `leadership did not move within ${timeoutMs} ms (${s.nodeId} is ${s.role}; leader ${s.leaderId || 'unknown'}, term ${s.term}, ` +
        `members ${s.members.map((m) => `${m.id}:${m.matchIndex ?? '?'}`).join(' ')}, last index ${s.lastIndex})`,
    );
  }

  onRequest(channel: string, handler: AppRequestHandler): void {
    this.parts.router.register(channel, handler);
  }

  async requestLeader(channel: string, body: unknown, timeoutMs: number): Promise<{ leaderId: NodeId; value: unknown }> {
    const leaderId = this.parts.runtime.leadership.leaderId;
    if (!leaderId) throw new NoLeaderException();
    const reply = decodeReply(await this.parts.network.call(leaderId, encodeRequest({ kind: 'app', channel, body }), timeoutMs));
    if (!reply.ok) throw fromWire(reply.error);
    return { leaderId, value: reply.value };
  }

  isConnectedTo(peer: NodeId): boolean | null {
    if (peer === this.nodeId || !this.parts.connectedPeers) return null;
    return this.parts.connectedPeers().has(peer);
  }

  async publishEvent(name: string, payload: unknown): Promise<{ index: number }> {
    return (await this.parts.proposer.propose('event', { name, payload })) as { index: number };
  }

  members(): readonly BackendMember[] {
    return this.group.current.members.map((m) => ({ id: m.id, address: m.address, membership: m.role }));
  }

  get membership(): MembershipOps {
    return this.group;
  }

  membershipHistory(): readonly MembershipEvent[] {
    return this.group.changes();
  }

  status(): BackendStatus {
    return { ...this.parts.runtime.status(), backend: 'embedded', replicatedLog: true };
  }

  leaderlessHint(): string {
    const members = this.members().map((m) => `${m.id}@${m.address}`);
    return `check that a majority of members (${members.join(', ')}) can reach each other and share the secret`;
  }

  async refreshStatus(): Promise<void> {}

  async start(): Promise<void> {
    await this.parts.runtime.start();
    this.group.start();
  }

  async stop(): Promise<void> {
    if (this.parts.leaveOnShutdown) await this.group.leave();
    this.group.stop();
    await this.parts.runtime.stop();
  }
}
