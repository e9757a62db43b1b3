import type { Etcd3 } from 'etcd3';
import type { NodeId } from '../../raft/index.js';
import type { Clock, Timers } from '../../io/clock.js';
import type { TcpNetwork } from '../../transport/tcp-network.js';
import type {
  BackendMember,
  BackendStatus,
  ClusterBackend,
  EtcdView,
  EventSource,
  LeadershipState,
  MemberStatus,
} from '../backend.js';
import type { MembershipEvent } from '../cluster-membership.js';
import { fromWire } from '../cluster-store.js';
import type { DeliveryCursor } from '../event-delivery.js';
import { NoLeaderException, NotLeaderException } from '../errors.js';
import type { ClusterLogger } from '../logger.js';
import type { AppRequestHandler } from '../request-handler.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest, toWireError } from '../rpc.js';
import { EtcdElection, sessionTiming } from './election.js';
import { callOptions } from './etcd-client.js';
import { EtcdEvents } from './etcd-events.js';
import { EtcdLocks } from './etcd-locks.js';
import { EtcdNodes, type RegisteredNode } from './etcd-nodes.js';
import { readEtcdView } from './etcd-status.js';
import { EtcdStore } from './etcd-store.js';
import { EtcdTasks } from './etcd-tasks.js';
import type { EtcdKeys } from './keys.js';

/** How long a status view of etcd is reused. */
const STATUS_FRESH_MS = 1000;

/** The channel a follower asks the leader to step down on (transferLeadership from any node). */
const TRANSFER_CHANNEL = '__catga.etcd.transfer';

export interface EtcdBackendParts {
  readonly nodeId: NodeId;
  /** host:port other nodes forward to. */
  readonly address: string;
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly hosts: readonly string[];
  /** A client bound to one etcd endpoint (status asks each member). */
  readonly clientFor: (url: string) => Etcd3;
  readonly network: TcpNetwork;
  readonly clientId: string;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly wallClock: () => number;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly eventRetention: number;
  /** The coordinator's delivery cursor: events are read from etcd from there on. */
  readonly eventCursor: DeliveryCursor;
}

/**
 * Coordination on an etcd cluster: leadership by etcd's election recipe on a session lease, the store, locks, task
 * ledger and events as etcd keys under one prefix, and forwarded commands over the library's own authenticated
 * transport to the leader's advertised address.
 */
export class EtcdBackend implements ClusterBackend {
  readonly kind = 'etcd' as const;
  readonly nodeId: NodeId;
  readonly clientId: string;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly wallClock: () => number;
  readonly store: EtcdStore;
  readonly locks: EtcdLocks;
  readonly tasks: EtcdTasks;
  readonly membership = null;
  readonly election: EtcdElection;
  /**
   * The feed's events for EventDelivery. Delivery only ever asks for events after the last one it delivered, so each
   * ask lets the feed drop those at or below it.
   */
  readonly events: EventSource;
  private readonly feed: EtcdEvents;
  private readonly nodes: EtcdNodes;
  private readonly channels = new Map<string, AppRequestHandler>();
  private running = false;
  private view: EtcdView;
  private refreshing: Promise<void> | null = null;
  /** One client per etcd endpoint for status calls, made on first use and closed on stop. */
  private readonly endpointClients = new Map<string, Etcd3>();

  constructor(private readonly p: EtcdBackendParts) {
    this.nodeId = p.nodeId;
    this.clientId = p.clientId;
    this.clock = p.clock;
    this.timers = p.timers;
    this.logger = p.logger;
    this.wallClock = p.wallClock;
    const { client, keys } = p;
    const self = { id: p.nodeId, address: p.address, clientId: p.clientId };
    this.store = new EtcdStore({ client, keys, requestTimeoutMs: p.requestTimeoutMs });
    this.locks = new EtcdLocks({ client, keys, clock: p.clock, timers: p.timers, owner: p.clientId, requestTimeoutMs: p.requestTimeoutMs });
    this.tasks = new EtcdTasks({
      client,
      keys,
      requestTimeoutMs: p.requestTimeoutMs,
      logger: p.logger,
      wallClock: p.wallClock,
      clock: p.clock,
      timers: p.timers,
      ownKey: () => this.election.ownKey(),
      leaderId: () => this.election.leadership.leaderId,
    });
    this.feed = new EtcdEvents({
      client,
      keys,
      clientId: p.clientId,
      retention: p.eventRetention,
      requestTimeoutMs: p.requestTimeoutMs,
      timers: p.timers,
      logger: p.logger,
      isLeader: () => this.hasValidLease(),
    });
    const feed = this.feed;
    this.events = {
      get evictedUpTo() {
        return feed.source.evictedUpTo;
      },
      after: (index) => {
        feed.forget(index);
        return feed.source.after(index);
      },
      onChange: (fn) => feed.source.onChange(fn),
    };
    this.nodes = new EtcdNodes({
      client,
      keys,
      self,
      requestTimeoutMs: p.requestTimeoutMs,
      timers: p.timers,
      logger: p.logger,
      takeoverWaitMs: 2 * sessionTiming(p.electionTimeoutMs).ttlS * 1000,
      onChange: () => this.dialable(),
    });
    this.election = new EtcdElection({
      client,
      keys,
      self,
      clock: p.clock,
      timers: p.timers,
      logger: p.logger,
      electionTimeoutMs: p.electionTimeoutMs,
      requestTimeoutMs: p.requestTimeoutMs,
      onSession: (lease) => this.nodes.register(lease.id),
      // Runs of an earlier tenure still marked running are over: their leader's lease, and so its election key, is gone.
      beforeLeading: (tenure) => this.tasks.abandonBefore(tenure),
    });
    this.election.onLeadershipChange(() => this.dialable());
    this.onRequest(TRANSFER_CHANNEL, async () => {
      if (!this.election.leadership.isLeader) throw new NotLeaderException(this.election.leadership.leaderId);
      await this.election.resign();
      return true;
    });
    this.view = { prefix: p.keys.prefix, endpoints: [], leaderEndpoint: null, nodes: [], checkedAt: 0 };
  }

  get leadership(): LeadershipState {
    return this.election.leadership;
  }

  get isRunning(): boolean {
    return this.running;
  }

  get confirmTimeoutMs(): number {
    return this.p.requestTimeoutMs;
  }

  onLeadershipChange(fn: (s: LeadershipState) => void): () => void {
    return this.election.onLeadershipChange(fn);
  }

  onLeaseChange(fn: (valid: boolean) => void): () => void {
    return this.election.onLeaseChange(fn);
  }

  hasValidLease(): boolean {
    return this.running && this.election.hasValidLease();
  }

  /** The election key still ours (a linearizable read), then the task ledger's copy caught up to that read. */
  async readBarrier(timeoutMs: number): Promise<void> {
    const deadline = this.clock.now() + timeoutMs;
    const revision = await this.election.confirm(timeoutMs);
    await this.tasks.waitForRevision(revision, Math.max(1, deadline - this.clock.now()));
  }

  /**
   * The leader resigns and campaigns again at the back of the line, so the next candidate by election order leads.
   * etcd's recipe has no way to pick the next leader: `to` is accepted only when it is that candidate.
   */
  async transferLeadership(to: NodeId | undefined): Promise<void> {
    const before = this.election.leadership;
    if (!before.leaderId) throw new NoLeaderException();
    if (to !== undefined && to === before.leaderId) return;
    if (to !== undefined) {
      const next = await this.nextInLine();
      if (next !== to) throw new Error(`the etcd backend cannot pick the next leader: ${next ?? 'no other node'} is next in line, not ${to}`);
    }
    if (before.isLeader) await this.election.resign();
    else await this.requestLeader(TRANSFER_CHANNEL, null, this.p.requestTimeoutMs);
    const timeoutMs = this.p.requestTimeoutMs + 4 * sessionTiming(this.p.electionTimeoutMs).ttlS * 1000;
    const deadline = this.clock.now() + timeoutMs;
    while (this.clock.now() < deadline) {
      const now = this.election.leadership;
      if (now.leaderId && now.leaderId !== before.leaderId && (!to || now.leaderId === to)) return;
      await new Promise<void>((r) => this.timers.setTimeout(r, 5));
    }
    throw new Error(`leadership did not move within ${timeoutMs} ms (leader ${this.election.leadership.leaderId || 'unknown'})`);
  }

  onRequest(channel: string, handler: AppRequestHandler): void {
    if (this.channels.has(channel)) throw new Error(`request channel "${channel}" is already registered`);
    this.channels.set(channel, handler);
  }

  async requestLeader(channel: string, body: unknown, timeoutMs: number): Promise<{ leaderId: NodeId; value: unknown }> {
    const leaderId = this.election.leadership.leaderId;
    if (!leaderId) throw new NoLeaderException('no leader is known: the etcd election has no holder, or etcd is unreachable');
    if (leaderId === this.nodeId) {
      const handler = this.channels.get(channel);
      if (!handler) throw new Error(`no handler for request channel "${channel}" on ${this.nodeId}`);
      return { leaderId, value: await handler(body, this.nodeId) };
    }
    this.dialable();
    const reply = decodeReply(await this.p.network.call(leaderId, encodeRequest({ kind: 'app', channel, body }), timeoutMs));
    if (!reply.ok) throw fromWire(reply.error);
    return { leaderId, value: reply.value };
  }

  isConnectedTo(peer: NodeId): boolean | null {
    if (peer === this.nodeId) return null;
    return this.p.network.stats().peers[peer]?.connected ?? false;
  }

  publishEvent(name: string, payload: unknown): Promise<{ index: number }> {
    return this.feed.publish(name, payload);
  }

  members(): readonly BackendMember[] {
    return this.nodes.list().map((n) => ({ id: n.id, address: n.address, membership: 'voter' }));
  }

  /** Nodes come and go by lease; there is no committed membership history to show. */
  membershipHistory(): readonly MembershipEvent[] {
    return [];
  }

  status(): BackendStatus {
    const l = this.election.leadership;
    const revision = Math.max(this.tasks.revision, this.feed.revision);
    const members = this.nodes.list().map(
      (n): MemberStatus => ({
        id: n.id,
        address: n.address,
        role: n.id === this.nodeId ? 'self' : n.id === l.leaderId ? 'leader' : 'follower',
        membership: 'voter',
        matchIndex: null,
        lastContactMs: n.id === this.nodeId ? 0 : null,
      }),
    );
    return {
      nodeId: this.nodeId,
      role: l.isLeader ? 'leader' : l.leaderId ? 'follower' : 'candidate',
      isLeader: l.isLeader,
      leaderId: l.leaderId,
      term: l.term,
      commitIndex: revision,
      appliedIndex: revision,
      snapshotIndex: 0,
      lastIndex: revision,
      leaseValid: this.hasValidLease(),
      members,
      membershipChange: null,
      backend: 'etcd',
      replicatedLog: false,
      etcd: this.view,
    };
  }

  leaderlessHint(): string {
    return `check that etcd answers at ${this.p.hosts.join(', ')} and that a node holds the election under ${this.p.keys.electionPrefix}`;
  }

  /** At most one refresh a second, shared by concurrent reports (a page polls every second, per open tab). */
  refreshStatus(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.view.checkedAt < STATUS_FRESH_MS) return Promise.resolve();
    this.refreshing = this.readView().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async readView(): Promise<void> {
    this.view = await readEtcdView(this.p.client, this.p.hosts, (url) => this.endpointClient(url), this.p.keys.prefix, this.nodes.list(), this.p.requestTimeoutMs);
  }

  async start(): Promise<void> {
    await this.p.network.listen({
      raft: () => undefined, // no Raft traffic on this backend
      call: (from, payload) => this.serve(from, payload),
    });
    this.running = true;
    await this.nodes.checkUnclaimed();
    await this.nodes.open();
    await this.tasks.open();
    await this.feed.start((await this.p.eventCursor.read()) ?? 0);
    await this.election.start();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    // Revoking the session deletes the election key: the next candidate leads at once instead of after the TTL.
    await this.election.stop();
    await this.closeAll();
  }

  /**
   * @internal Test seam: stops as a crash would look to etcd and the other nodes — no revoke, so the session lease and
   * the election key stay until etcd expires them — while the process stays up, cut off.
   */
  async simulateCrash(): Promise<void> {
    this.running = false;
    this.election.crash();
    await this.closeAll();
  }

  /** Watches, the forwarding port and every etcd client: nothing of this node is left running. */
  private async closeAll(): Promise<void> {
    await Promise.all([this.feed.stop(), this.tasks.close(), this.nodes.close()]);
    await this.p.network.close();
    this.closeEndpointClients();
    this.p.client.close();
  }

  private endpointClient(url: string): Etcd3 {
    let c = this.endpointClients.get(url);
    if (!c) this.endpointClients.set(url, (c = this.p.clientFor(url)));
    return c;
  }

  private closeEndpointClients(): void {
    for (const c of this.endpointClients.values()) c.close();
    this.endpointClients.clear();
  }

  /** The candidate after the current leader in election order: who leads once the leader resigns. */
  private async nextInLine(): Promise<NodeId | null> {
    const r = await this.p.client
      .getAll()
      .prefix(this.p.keys.electionPrefix)
      .sort('Create', 'Ascend')
      .limit(2)
      .options(callOptions(this.p.requestTimeoutMs))
      .exec();
    const kv = r.kvs[1];
    if (!kv) return null;
    try {
      return (JSON.parse(kv.value.toString()) as { id: NodeId }).id;
    } catch {
      return null;
    }
  }

  private async serve(from: NodeId, payload: Uint8Array): Promise<Uint8Array> {
    try {
      const req = decodeRequest(payload);
      if (req.kind !== 'app') throw new Error(`${req.kind} requests are not served by the etcd backend`);
      const handler = this.channels.get(req.channel);
      if (!handler) throw new Error(`no handler for request channel "${req.channel}" on ${this.nodeId}`);
      return encodeReply({ ok: true, value: await handler(req.body, from) });
    } catch (e) {
      return encodeReply({ ok: false, error: toWireError(e) });
    }
  }

  /** Tells the transport where the present nodes and the current leader listen (the leader may register last). */
  private dialable(): void {
    const byId = new Map<NodeId, string>(this.nodes.list().map((n: RegisteredNode) => [n.id, n.address]));
    const leader = this.election.leaderValue();
    if (leader && !byId.has(leader.id)) byId.set(leader.id, leader.address);
    byId.set(this.nodeId, this.p.address);
    this.p.network.setMembers([...byId].map(([id, address]) => ({ id, address })));
  }
}
