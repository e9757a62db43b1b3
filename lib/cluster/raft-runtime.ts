import { MessageType, RaftNode, isMembershipEntry, type Membership, type Message, type NodeId, type RaftConstructor, type Ready, type ReadOnlyMode, type Snapshot, type SoftState } from '../raft/index.js';
import type { LeadershipState, MemberStatus, RuntimeStatus } from './backend.js';
import { DiskFullError } from '../storage/errors.js';
import type { RaftStorage } from '../storage/raft-storage.js';
import { ClusterStoppedError, MembershipChangeError, NoLeaderException, NotLeaderException, ProposalDroppedError, ProposalOutcomeUnknownError } from './errors.js';
import type { Clock, Timers, TimerHandle } from '../io/clock.js';
import type { Network } from '../io/network.js';
import type { ClusterLogger } from './logger.js';
import type { StateMachine } from './state/cluster-state-machine.js';

export interface RuntimeConfig {
  readonly nodeId: NodeId;
  /** The configuration to start from when storage holds none; empty for a node that waits to be added. */
  readonly membership: Membership;
  /** Real ms per core tick; elections and heartbeats are counted in ticks. */
  readonly tickMs: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  /** Entries applied past the last snapshot before a new one is taken and the log compacted. */
  readonly compactionThreshold: number;
  /**
   * Default true: once images are larger than GROWING_IMAGE_BYTES, a snapshot also waits until the entries applied
   * since the last one hold as many bytes as its image, so a large state is not rewritten more often than its log
   * replaces it. The simulator turns it off to snapshot often.
   */
  readonly compactionGrowsWithState?: boolean;
  readonly maxClockDrift?: number;
  readonly readOnly?: ReadOnlyMode;
  readonly maxSizePerMsg?: number;
  readonly maxInflightMsgs?: number;
  /** How long a proposal may wait to be applied when its caller names no deadline. Default 5000 ms. */
  readonly requestTimeoutMs?: number;
}

/** The library's default `requestTimeout`. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

export interface RuntimeDeps {
  readonly storage: RaftStorage;
  readonly network: Network;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly random: () => number;
  readonly stateMachine: StateMachine;
  readonly logger: ClusterLogger;
  /** Answers peers' requests (forwarded writes and commands). */
  readonly onCall?: (from: NodeId, payload: Uint8Array) => Promise<Uint8Array>;
  /** A different core, for the simulator's self-test only. */
  readonly core?: RaftConstructor;
}

export type { LeadershipState, MemberStatus, RuntimeStatus };

/**
 * A proposal from the moment it is queued until it settles: first in `proposals`, then, once in the log at
 * (`index`, `term`), a waiter until it is applied here or its deadline passes. One object all along, and no timer of
 * its own (see expireWaiters): at tens of thousands of writes a second, every object per write counts.
 */
class Proposal {
  index = 0;
  term = 0;
  /** Neighbours in the waiters' deadline order. */
  prev: Proposal | null = null;
  next: Proposal | null = null;

  constructor(
    readonly data: Uint8Array,
    readonly resolve: (result: unknown) => void,
    readonly reject: (e: Error) => void,
    /** On this runtime's clock. */
    readonly deadline: number,
  ) {}
}

interface PendingRead {
  index: number | null;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: TimerHandle;
}

type LeadershipListener = (s: LeadershipState) => void;
type LeaseListener = (valid: boolean) => void;
/** `committedAt`: null when the configuration just came into force (appended), its log index once it commits. */
type MembershipListener = (m: Membership, committedAt: number | null) => void;

/** Images up to this size are cheap to write again: below it, compactionThreshold alone decides when to snapshot. */
const GROWING_IMAGE_BYTES = 1024 * 1024;

/** Backoff between retries of a write the full disk refused. */
const DISK_FULL_RETRY_MS = { first: 100, max: 2000 } as const;

/**
 * Drives the pure core with real (or simulated) time, disk and network: ticks from a monotonic clock, persists each
 * Ready before sending its messages (a leader's replication excepted, see handleReady), applies committed entries,
 * serves reads, snapshots and compacts.
 *
 * Group commit: proposals wait in a queue until the current Ready is persisted; everything that arrived meanwhile
 * goes to the core as one batch, so one fsync covers all of it.
 */
export class RaftRuntime {
  private node!: RaftNode;
  private proposals: Proposal[] = [];
  /** Proposals in the log by index, and the same in deadline order (a list: they arrive nearly in that order). */
  private readonly waiters = new Map<number, Proposal>();
  private firstDue: Proposal | null = null;
  private lastDue: Proposal | null = null;
  /** One timer for every waiter's deadline, armed for `deadlineTimerAt` (Infinity: none). */
  private deadlineTimer: TimerHandle | null = null;
  private deadlineTimerAt = Infinity;
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  /** Makes read contexts unique across restarts of this process, so no answer meant for an earlier one matches. */
  private readonly readPrefix: string;
  private appliedIndex = 0;
  private snapshotIndex = 0;
  private running = false;
  private busy: Promise<void> | null = null;
  private pumpScheduled = false;
  /** A snapshot is being encoded and its image written; one whose image is written, waiting for pump() to save it. */
  private encoding = false;
  private encoded: Snapshot | null = null;
  /** Bytes of entries applied since the last snapshot, and the size of that snapshot's image. */
  private appliedBytes = 0;
  private imageBytes = 0;
  /** appliedBytes when the snapshot under way was captured: what it covers, taken off once it is saved. */
  private capturedBytes = 0;
  /** Term and vote as last written to disk. */
  private durableVote = { term: 0, vote: '' as NodeId };
  private tickStart = 0;
  private ticksDone = 0;
  private tickTimer: TimerHandle | null = null;
  private leaseWasValid = false;
  /**
   * This leader's latest transfer: stepping down within an election timeout of it is planned, not a fault (a transfer
   * that did not finish by then was abandoned).
   */
  private handingTo: { readonly to: NodeId; readonly at: number } | null = null;
  private state: LeadershipState = { isLeader: false, leaderId: '', term: 0 };
  private readonly lastHeard = new Map<NodeId, number>();
  private readonly leadershipListeners = new Set<LeadershipListener>();
  private readonly leaseListeners = new Set<LeaseListener>();
  private readonly membershipListeners = new Set<MembershipListener>();
  /** The configuration listeners were last told of. */
  private knownMembership: Membership | null = null;
  /** A committed configuration listed this node (so one without it means it was removed). */
  private wasMember = false;
  private failure: Error | null = null;
  /** Set while a write waits for disk space: nothing is acknowledged, proposed or taken in meanwhile. */
  private diskFull: DiskFullError | null = null;

  constructor(
    readonly config: RuntimeConfig,
    private readonly deps: RuntimeDeps,
  ) {
    this.readPrefix = `${config.nodeId}:${Math.floor(deps.random() * 2 ** 48).toString(36)}`;
  }

  get leadership(): LeadershipState {
    return this.state;
  }

  get nodeId(): NodeId {
    return this.config.nodeId;
  }

  /** The core, for status pages and the simulator's invariant checks. Treat as read-only. */
  get raft(): RaftNode {
    return this.node;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  async start(): Promise<void> {
    const { storage, network, stateMachine } = this.deps;
    const recovered = await storage.open();
    const c = this.config;
    this.node = new RaftNode(
      {
        id: c.nodeId,
        membership: c.membership,
        electionTick: c.electionTick,
        heartbeatTick: c.heartbeatTick,
        random: this.deps.random,
        maxClockDrift: c.maxClockDrift,
        readOnly: c.readOnly,
        maxSizePerMsg: c.maxSizePerMsg,
        maxInflightMsgs: c.maxInflightMsgs,
      },
      recovered,
      this.deps.core,
    );
    if (recovered.snapshot) {
      stateMachine.restore(recovered.snapshot.data);
      this.appliedIndex = this.snapshotIndex = recovered.snapshot.meta.index;
      this.imageBytes = recovered.snapshot.data.byteLength;
    }
    this.state = { isLeader: false, leaderId: '', term: recovered.hardState.term };
    this.durableVote = { term: recovered.hardState.term, vote: recovered.hardState.vote };
    this.running = true;
    this.wasMember = this.node.core.membership.members.some((x) => x.id === c.nodeId);
    this.syncMembership();
    await network.listen({
      raft: (m) => {
        if (!this.running || this.diskFull) return; // a node that cannot persist takes no part, as if cut off
        this.lastHeard.set(m.from, this.deps.clock.now());
        // After a stall the core's tick count is stale: a follower would stamp this leader contact (and the vote
        // refusals the lease rests on) in the past, a leader would count an acknowledgement against an old clock.
        this.advanceClock();
        this.node.step(m);
        // A message can end the lease (a newer term): leader work stops at once. Only a leader has one to lose or gain.
        if (this.leaseWasValid || this.node.core.role === 'leader') this.checkLease();
        this.schedulePump();
      },
      call: (from, payload) => {
        if (!this.deps.onCall) return Promise.reject(new Error('this node takes no requests'));
        return this.deps.onCall(from, payload);
      },
    });
    this.tickStart = this.deps.clock.now();
    this.ticksDone = 0;
    this.scheduleTick();
    const voters = this.node.core.voters;
    if (voters.length === 1 && voters[0] === c.nodeId) this.node.campaign(); // a single member leads at once
    this.schedulePump();
  }

  /**
   * Proposes on the leader; resolves with the state machine's result once the entry is applied here. Settles within
   * `timeoutMs` whatever happens: NotLeaderException when the entry surely did not enter the log (not leader, handing
   * over, refused by a full disk), ProposalDroppedError when another entry took its slot, ProposalOutcomeUnknownError
   * when it was appended but this node cannot tell whether it will apply (the deadline passed, this node stopped
   * leading, a snapshot jumped past it), ClusterStoppedError before it was appended.
   */
  propose(data: Uint8Array, timeoutMs: number = this.config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS): Promise<unknown> {
    if (!this.running) return Promise.reject(this.failure ?? new ClusterStoppedError());
    if (this.diskFull) return Promise.reject(new NotLeaderException('', `this node cannot take writes: ${this.diskFull.message}`));
    if (!this.state.isLeader) return Promise.reject(new NotLeaderException(this.state.leaderId));
    return new Promise((resolve, reject) => {
      this.proposals.push(new Proposal(data, resolve, reject, this.deps.clock.now() + timeoutMs));
      this.schedulePump();
    });
  }

  /**
   * Changes the configuration (on the leader): resolves once the change is committed. Refused at once, with the
   * reason, when it is not a single-server change, another change is in progress, or this leader has not committed an
   * entry of its term yet; settles like propose() otherwise.
   */
  proposeMembership(next: Membership, timeoutMs: number = this.config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
    if (!this.running) return Promise.reject(this.failure ?? new ClusterStoppedError());
    if (this.diskFull) return Promise.reject(new NotLeaderException('', `this node cannot take writes: ${this.diskFull.message}`));
    if (!this.state.isLeader) return Promise.reject(new NotLeaderException(this.state.leaderId));
    const at = this.node.core.proposeMembership(next);
    if (typeof at === 'string') return Promise.reject(new MembershipChangeError(at));
    this.syncMembership();
    const deadline = this.deps.clock.now() + timeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      this.addWaiter(at.index, at.term, new Proposal(new Uint8Array(0), resolve, reject, deadline));
      this.schedulePump();
    }).then(() => undefined);
  }

  /** This node leads and has committed an entry of its term: it may propose a membership change. */
  get leaderSettled(): boolean {
    return this.state.isLeader && this.node.core.committedInTerm();
  }

  /** The configuration in force here: the newest in this node's log, committed or not. */
  get membership(): Membership {
    return this.node.core.membership;
  }

  onMembershipChange(fn: MembershipListener): () => void {
    this.membershipListeners.add(fn);
    return () => this.membershipListeners.delete(fn);
  }

  /**
   * Linearizable read barrier (ReadIndex): resolves once this node's state machine has applied everything committed
   * before the call, on the leader or a follower.
   */
  readBarrier(timeoutMs: number): Promise<void> {
    if (!this.running) return Promise.reject(this.failure ?? new ClusterStoppedError());
    this.advanceClock(); // a lease read is answered from the lease: it must be judged on the current tick
    const ctx = `${this.readPrefix}:${++this.readSeq}`;
    if (!this.node.readIndex(ctx)) return Promise.reject(new NoLeaderException());
    this.schedulePump();
    return new Promise((resolve, reject) => {
      const timer = this.deps.timers.setTimeout(() => {
        this.reads.delete(ctx);
        reject(new NoLeaderException(`no read confirmation from a leader within ${timeoutMs} ms`));
      }, timeoutMs);
      this.reads.set(ctx, { index: null, resolve, reject, timer });
    });
  }

  /** True while this node leads with a lease a quorum confirmed: no other node can be acting as leader. */
  hasValidLease(): boolean {
    if (!this.running) return false;
    this.checkLease();
    return this.leaseWasValid;
  }

  /** False once stopped (or failed): nothing more will be proposed, applied or answered here. */
  get isRunning(): boolean {
    return this.running;
  }

  /** Asks the leader (this node) to hand over to `to`, or to the most up-to-date follower. */
  transferLeadership(to?: NodeId, why = ''): NodeId | null {
    if (!this.running || !this.state.isLeader) return null;
    const target = to ?? this.bestFollower();
    if (!target || !this.node.transferLeader(target)) return null;
    this.handingTo = { to: target, at: this.deps.clock.now() };
    this.deps.logger.log(`handing leadership over to ${target}${why}`);
    this.checkLease(); // TimeoutNow may be on its way: leader work stops now, not at the next tick
    this.schedulePump();
    return target;
  }

  onLeadershipChange(fn: LeadershipListener): () => void {
    this.leadershipListeners.add(fn);
    return () => this.leadershipListeners.delete(fn);
  }

  /** Fires when this leader's lease becomes valid or lapses. */
  onLeaseChange(fn: LeaseListener): () => void {
    this.leaseListeners.add(fn);
    return () => this.leaseListeners.delete(fn);
  }

  status(): RuntimeStatus {
    // After a stall (GC pause, SIGSTOP) the core has not yet counted the ticks that passed: catch up first, or the
    // status would still show a lease that has run out.
    if (this.running) this.checkLease();
    const s = this.node.status();
    const now = this.deps.clock.now();
    const match = new Map(s.peers.map((p) => [p.id, p.match]));
    const core = this.node.core;
    const members = core.membership.members.map(({ id, address, role: membership }): MemberStatus => {
      const heard = this.lastHeard.get(id);
      return {
        id,
        address,
        role: id === this.config.nodeId ? 'self' : id === s.leader ? 'leader' : 'follower',
        membership,
        matchIndex: match.get(id) ?? null,
        lastContactMs: id === this.config.nodeId ? 0 : heard === undefined ? null : Math.round(now - heard),
      };
    });
    return {
      nodeId: this.config.nodeId,
      role: s.role,
      isLeader: s.role === 'leader',
      leaderId: s.leader,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: this.appliedIndex,
      snapshotIndex: s.snapshotIndex,
      lastIndex: s.lastIndex,
      leaseValid: this.running && this.state.isLeader && s.leaseValid,
      members,
      membershipChange: this.pendingChange(),
    };
  }

  /**
   * Stops the node. A leader first hands leadership to the most up-to-date follower and waits (bounded) until it has,
   * so writes pause for a round trip rather than an election.
   */
  async stop(opts: { transfer?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.running) return;
    const timeoutMs = opts.timeoutMs ?? this.config.electionTick * this.config.tickMs * 2;
    if (opts.transfer !== false && this.state.isLeader && this.node.core.voters.length > 1) {
      if (this.transferLeadership(undefined, ' before stopping')) await this.waitFor(() => !this.state.isLeader, timeoutMs);
    }
    await this.halt(new ClusterStoppedError());
    await this.deps.network.close();
    await this.deps.storage.close();
  }

  // ---- the loop -------------------------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled || !this.running) return;
    this.pumpScheduled = true;
    this.deps.timers.setImmediate(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (!this.running || this.busy) return;
    const snap = this.encoded;
    this.encoded = null;
    this.flushProposals();
    if (!snap && !this.node.hasReady()) return;
    const work = snap ? this.saveSnapshot(snap) : this.handleReady(this.node.ready());
    this.busy = work.then(
      () => {
        this.busy = null;
        this.schedulePump();
      },
      (e: unknown) => {
        this.busy = null;
        void this.fail(e instanceof Error ? e : new Error(String(e)));
      },
    );
  }

  private flushProposals(): void {
    if (this.proposals.length === 0) return;
    const now = this.deps.clock.now();
    // Taken whole and filtered in place: no array per step on the path every write takes.
    const batch = this.proposals;
    this.proposals = [];
    let n = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.deadline > now) batch[n++] = p;
      else p.reject(new NotLeaderException(this.state.leaderId, 'the write waited past its deadline before it reached the log; it was not applied'));
    }
    if (n === 0) return;
    batch.length = n;
    const data = new Array<Uint8Array>(n);
    for (let i = 0; i < n; i++) data[i] = batch[i]!.data;
    const at = this.node.propose(data);
    if (!at) {
      const lead = this.node.core.lead;
      const e =
        lead === this.config.nodeId
          ? new NotLeaderException('', 'this node is handing leadership over; retry in a moment')
          : new NotLeaderException(lead);
      for (const p of batch) p.reject(e);
      return;
    }
    for (let i = 0; i < n; i++) this.addWaiter(at.index + i, at.term, batch[i]!);
  }

  /**
   * One waiter per log index. One still there from an earlier term lost its entry when this node's log was cut back
   * (as a follower); that entry may yet be committed by another leader that holds it, so its outcome is unknown.
   */
  private addWaiter(index: number, term: number, p: Proposal): void {
    // Checked first: an error (with its stack trace) built for every write only to be dropped was a large share of
    // the allocation per write.
    if (this.waiters.has(index)) {
      this.settleWaiter(index, new ProposalOutcomeUnknownError(`log index ${index} was taken over here; another member may still commit the write`));
    }
    p.index = index;
    p.term = term;
    this.waiters.set(index, p);
    // Into deadline order, searched from the end: a new proposal's deadline is almost always the latest.
    let before = this.lastDue;
    while (before !== null && before.deadline > p.deadline) before = before.prev;
    p.prev = before;
    p.next = before === null ? this.firstDue : before.next;
    if (p.next === null) this.lastDue = p;
    else p.next.prev = p;
    if (before === null) this.firstDue = p;
    else before.next = p;
    if (p.deadline < this.deadlineTimerAt) this.armDeadlineTimer(p.deadline);
  }

  /** Takes `w` out of the waiters. The deadline timer stays: if nothing is due when it fires, it re-arms. */
  private dropWaiter(w: Proposal): void {
    this.waiters.delete(w.index);
    if (w.prev === null) this.firstDue = w.next;
    else w.prev.next = w.next;
    if (w.next === null) this.lastDue = w.prev;
    else w.next.prev = w.prev;
    w.prev = w.next = null;
  }

  private armDeadlineTimer(at: number): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimerAt = at;
    this.deadlineTimer = this.deps.timers.setTimeout(() => this.expireWaiters(at), Math.max(0, at - this.deps.clock.now()));
  }

  /**
   * The deadline timer armed for `at` fired: every waiter due by then (or by now) is settled as unknown, as its own
   * timer would have done, and the timer is armed again for the next deadline.
   */
  private expireWaiters(at: number): void {
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
    const due = Math.max(at, this.deps.clock.now());
    for (let w = this.firstDue; w !== null && w.deadline <= due; w = this.firstDue) {
      this.dropWaiter(w);
      w.reject(new ProposalOutcomeUnknownError('the write was not applied before its deadline'));
    }
    if (this.firstDue !== null) this.armDeadlineTimer(this.firstDue.deadline);
  }

  /** Rejects the waiter at `index`. */
  private settleWaiter(index: number, e: Error): void {
    const w = this.waiters.get(index);
    if (!w) return;
    this.dropWaiter(w);
    w.reject(e);
  }

  /** Rejects every waiter; `why` builds the error per log index. */
  private settleAllWaiters(why: (index: number) => Error): void {
    for (const index of [...this.waiters.keys()]) this.settleWaiter(index, why(index));
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.updateLeadership(rd.softState);
    // Before any message goes out: a message may be for a member the transport learns of only now.
    this.syncMembership();
    // Raft thesis §10.2.1: a leader replicates while it writes its own copy, because it counts itself toward a commit
    // only once that write is durable (entriesStable on advance). Not in a Ready that changes term or vote: those must
    // be on disk before anything is said in the new term. Everything else still waits for the write.
    const hs = rd.hardState;
    const replicateEarly =
      this.node.core.role === 'leader' && (!hs || (hs.term === this.durableVote.term && hs.vote === this.durableVote.vote));
    const afterWrite: Message[] = [];
    for (const m of rd.messages) {
      if (replicateEarly && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) this.deps.network.sendRaft(m);
      else afterWrite.push(m);
    }
    if (rd.snapshot || rd.entries.length > 0 || (hs && rd.mustSync)) {
      // A commit-only hard state needs no write: after a crash the commit index is learned again from the leader.
      await this.durably(() => this.deps.storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: hs }));
      if (!this.running) return;
      if (hs) this.durableVote = { term: hs.term, vote: hs.vote };
    }
    for (const m of afterWrite) this.deps.network.sendRaft(m);
    const sm = this.deps.stateMachine;
    if (rd.snapshot) {
      sm.restore(rd.snapshot.data);
      this.appliedIndex = this.snapshotIndex = rd.snapshot.meta.index;
      this.imageBytes = rd.snapshot.data.byteLength;
      this.appliedBytes = 0;
      this.settleSkipped(rd.snapshot.meta.index);
    }
    for (const e of rd.committedEntries) {
      const result = sm.apply(e);
      this.appliedIndex = e.index;
      this.appliedBytes += e.data.byteLength;
      if (isMembershipEntry(e.data)) this.membershipCommitted(e.index);
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.dropWaiter(w);
      if (w.term === e.term) w.resolve(result);
      else w.reject(new ProposalDroppedError(`log index ${e.index} went to another leader's entry; the proposal was not applied`));
    }
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.context);
      if (r) r.index = rs.index;
    }
    this.node.advance(rd);
    this.serveReads();
    this.maybeCompact();
  }

  /** A snapshot jumped over proposals still waiting: whether they made it in is unknown here. */
  private settleSkipped(index: number): void {
    for (const i of [...this.waiters.keys()]) {
      if (i <= index) this.settleWaiter(i, new ProposalOutcomeUnknownError(`a snapshot to index ${index} replaced log index ${i} before it applied here`));
    }
  }

  private serveReads(): void {
    for (const [ctx, r] of this.reads) {
      if (r.index === null || r.index > this.appliedIndex) continue;
      this.reads.delete(ctx);
      r.timer.cancel();
      r.resolve();
    }
  }

  /**
   * Starts a snapshot of the applied state once the log has grown past the threshold. It is encoded in slices
   * between other work (a whole image at once stalled the loop 30–100 ms at 10–100k keys) and its image is written
   * beside the Readys (writing and syncing 200k keys held every Ready back 112 ms); pump() then records it between
   * Readys, one small WAL write, and compacts the log.
   */
  private maybeCompact(): void {
    if (this.appliedIndex - this.snapshotIndex < this.config.compactionThreshold) return;
    if (this.config.compactionGrowsWithState !== false && this.imageBytes > GROWING_IMAGE_BYTES && this.appliedBytes < this.imageBytes) return;
    this.snapshotNow();
  }

  /**
   * Snapshots the applied state and compacts the log now, whatever the thresholds; false when one is under way or
   * nothing was applied since the last. For benchmarks that must see a snapshot in their window, and for tests.
   */
  snapshotNow(): boolean {
    if (!this.running || this.encoding || this.encoded || this.appliedIndex <= this.snapshotIndex) return false;
    const core = this.node.core;
    const index = this.appliedIndex;
    const term = core.log.term(index);
    // A snapshot from the leader, received but not yet installed here, already replaced the log past `index`.
    if (term === undefined) return false;
    const meta = { index, term, membership: core.membershipAt(index) };
    const storage = this.deps.storage;
    this.encoding = true;
    this.capturedBytes = this.appliedBytes;
    this.deps.stateMachine
      .snapshotInSlices(() => new Promise((r) => this.deps.timers.setImmediate(r)))
      .then(async (data) => {
        const snap = { meta, data };
        // A full disk here is not fatal: saveSnapshot() writes the image again, retrying as every write does.
        await storage.writeSnapshotImage?.(snap).catch((e: unknown) => {
          if (!(e instanceof DiskFullError)) throw e;
        });
        return snap;
      })
      .then(
        (snap) => {
          this.encoding = false;
          this.encoded = snap;
          this.schedulePump();
        },
        (e: unknown) => {
          this.encoding = false;
          void this.fail(e instanceof Error ? e : new Error(String(e)));
        },
      );
    return true;
  }

  private async saveSnapshot(snap: Snapshot): Promise<void> {
    if (snap.meta.index <= this.snapshotIndex) return; // a snapshot from the leader got further meanwhile
    await this.durably(() => this.deps.storage.saveSnapshot(snap));
    this.node.compact(snap);
    this.snapshotIndex = snap.meta.index;
    this.imageBytes = snap.data.byteLength;
    // What was applied after the capture stays counted (less, if a leader's snapshot reset the count meanwhile).
    this.appliedBytes = Math.max(0, this.appliedBytes - this.capturedBytes);
    // Entries applied while this one was encoded and written were not weighed (one snapshot at a time): weigh them
    // now, or the last of a burst would wait for the next write to be covered.
    this.maybeCompact();
  }

  private updateLeadership(s: SoftState): void {
    const next: LeadershipState = { isLeader: s.role === 'leader', leaderId: s.leader, term: s.term };
    const prev = this.state;
    this.state = next;
    if (prev.isLeader === next.isLeader && prev.leaderId === next.leaderId && prev.term === next.term) return;
    if (prev.isLeader && (!next.isLeader || next.term !== prev.term)) {
      // Proposals of the ended tenure may still commit under the next leader, or may not: say so now, so that
      // proposers retry through the new leader (their sessions make a second apply return the first result).
      this.settleAllWaiters(
        (i) => new ProposalOutcomeUnknownError(`this node stopped leading (term ${prev.term}) before log index ${i} committed`),
      );
    }
    const h = this.handingTo;
    const handedTo = prev.isLeader && !next.isLeader && h && this.deps.clock.now() - h.at <= this.config.electionTick * this.config.tickMs ? h.to : null;
    if (!next.isLeader) this.handingTo = null;
    if (next.isLeader) this.deps.logger.log(`this node (${this.config.nodeId}) is the leader for term ${next.term}`);
    else if (next.leaderId && next.leaderId !== prev.leaderId) this.deps.logger.log(`leader is ${next.leaderId} (term ${next.term})`);
    else if (handedTo) this.deps.logger.log(`stepped down for ${handedTo}, which is taking over (term ${next.term})`);
    else if (prev.isLeader) this.deps.logger.warn(`this node stopped leading (term ${prev.term}): a quorum stopped answering or a newer term began; electing`);
    else if (!next.leaderId && prev.leaderId) this.deps.logger.warn(`lost contact with leader ${prev.leaderId}; electing (term ${next.term})`);
    for (const fn of this.leadershipListeners) fn(next);
    this.checkLease();
  }

  // ---- membership -----------------------------------------------------------------------------------------------

  /** Tells listeners (the transport first of all) of a configuration that came into force since the last call. */
  private syncMembership(): void {
    const m = this.node.core.membership;
    if (m === this.knownMembership) return;
    this.knownMembership = m;
    for (const fn of this.membershipListeners) fn(m, null);
  }

  private membershipCommitted(index: number): void {
    const m = this.node.core.membershipAt(index);
    const member = m.members.some((x) => x.id === this.config.nodeId);
    const removed = this.wasMember && !member;
    this.wasMember ||= member;
    this.deps.logger.log(
      `membership committed at log index ${index}: ${m.members.map((x) => `${x.id}${x.role === 'learner' ? ' (learner)' : ''}`).join(', ')}` +
        (removed ? '; this node is no longer a member' : ''),
    );
    for (const fn of this.membershipListeners) fn(m, index);
  }

  private pendingChange(): { index: number } | null {
    const index = this.node.core.pendingMembershipIndex();
    return index > 0 ? { index } : null;
  }

  // ---- time -----------------------------------------------------------------------------------------------------

  private scheduleTick(): void {
    if (!this.running) return;
    const next = this.tickStart + (this.ticksDone + 1) * this.config.tickMs;
    const delay = Math.max(0, next - this.deps.clock.now());
    this.tickTimer = this.deps.timers.setTimeout(() => {
      this.checkLease();
      this.schedulePump();
      this.scheduleTick();
    }, delay);
  }

  /**
   * Ticks as many times as the monotonic clock says are due, so a stalled event loop cannot make the lease look
   * longer than it is. Runs before every input to the core and every lease check. Capped: after a few election
   * timeouts without ticks every timer has fired anyway.
   */
  private advanceClock(): void {
    // The epsilon absorbs float rounding: a timer set for the exact tick time must count that tick, or it would
    // re-arm itself with a vanishing delay forever.
    const due = Math.floor((this.deps.clock.now() - this.tickStart) / this.config.tickMs + 1e-9);
    if (due <= this.ticksDone) return;
    const n = Math.min(due - this.ticksDone, 3 * this.config.electionTick);
    this.ticksDone = due;
    for (let i = 0; i < n; i++) this.node.tick();
  }

  /**
   * Judges the lease on the current tick and tells listeners the moment it changes. Called after every input that
   * can end it (a tick, a message, a transfer), so leader work stops as the lease lapses, not a tick later.
   */
  private checkLease(): void {
    if (!this.running) return;
    this.advanceClock();
    // The core may lead a moment before its Ready reaches us; agree with `leadership`, which the app observes.
    const valid = this.state.isLeader && this.node.hasValidLease();
    if (valid === this.leaseWasValid) return;
    this.leaseWasValid = valid;
    for (const fn of this.leaseListeners) fn(valid);
  }

  private bestFollower(): NodeId | null {
    let best: { id: NodeId; match: number } | null = null;
    const voters = this.node.core.voters;
    for (const p of this.node.status().peers) {
      if (p.id === this.config.nodeId || !voters.includes(p.id)) continue;
      if (!best || p.match > best.match) best = { id: p.id, match: p.match };
    }
    return best?.id ?? null;
  }

  /** Resolves once `cond()` holds, checked every tick, or once `timeoutMs` passed or this node stopped; never rejects. */
  waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const deadline = this.deps.clock.now() + timeoutMs;
      const check = () => {
        if (cond() || this.deps.clock.now() >= deadline || !this.running) resolve();
        else this.deps.timers.setTimeout(check, this.config.tickMs);
      };
      check();
    });
  }

  // ---- stopping -------------------------------------------------------------------------------------------------

  /**
   * Runs a storage write. A full disk is waited out rather than fatal: the storage rolled the write back, so this
   * node holds the Ready — its messages unsent, nothing applied or advanced — and retries the same write with backoff
   * until it succeeds or the node stops. Meanwhile it takes no part in the cluster: queued proposals (not in the log)
   * and new ones are refused as by a non-leader, so proposers retry elsewhere, and proposals already in the log are
   * told their outcome is unknown rather than left waiting. Any other storage error propagates and stops the node.
   */
  private async durably(write: () => Promise<void>): Promise<void> {
    for (let delay: number = DISK_FULL_RETRY_MS.first; ; delay = Math.min(delay * 2, DISK_FULL_RETRY_MS.max)) {
      try {
        await write();
        break;
      } catch (e) {
        if (!(e instanceof DiskFullError) || !this.running) throw e;
        if (!this.diskFull) {
          this.deps.logger.warn(
            `disk full: ${e.message}. This node acknowledges nothing and takes no part in the cluster until space ` +
              `is freed; it retries the write every ${DISK_FULL_RETRY_MS.max / 1000} s at most, then carries on.`,
          );
          const refused = new NotLeaderException('', `this node cannot take writes: ${e.message}`);
          for (const p of this.proposals.splice(0)) p.reject(refused);
          this.settleAllWaiters(() => new ProposalOutcomeUnknownError(`this node's disk is full; the write may still apply once space is freed`));
        }
        this.diskFull = e;
      }
      await new Promise<void>((resolve) => this.deps.timers.setTimeout(resolve, delay));
      if (!this.running) throw this.failure ?? new ClusterStoppedError();
    }
    if (this.diskFull) this.deps.logger.log('disk space is back: the pending write succeeded; carrying on');
    this.diskFull = null;
  }

  /** Storage failed: acknowledging anything more could acknowledge what is not on disk, so this node stops. */
  private async fail(e: Error): Promise<void> {
    if (!this.running) return;
    this.failure = e;
    this.deps.logger.error(`stopping this node: ${e.message}. Fix the cause and restart the process; acknowledged data is safe on the other members.`);
    await this.halt(e);
    await this.deps.network.close().catch(() => undefined);
  }

  private async halt(reason: Error): Promise<void> {
    this.running = false;
    this.tickTimer?.cancel();
    this.deadlineTimer?.cancel();
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
    for (const p of this.proposals.splice(0)) p.reject(reason);
    this.settleAllWaiters(() => new ProposalOutcomeUnknownError(`stopped before the outcome was known: ${reason.message}`));
    for (const r of this.reads.values()) {
      r.timer.cancel();
      r.reject(reason);
    }
    this.reads.clear();
    if (this.state.isLeader || this.state.leaderId) {
      this.state = { isLeader: false, leaderId: '', term: this.state.term };
      for (const fn of this.leadershipListeners) fn(this.state);
    }
    if (this.leaseWasValid) {
      this.leaseWasValid = false;
      for (const fn of this.leaseListeners) fn(false);
    }
    await this.busy?.catch(() => undefined);
  }
}
