import { resolveConfig, type RaftConfig, type ResolvedConfig } from './config.js';
import { CAMPAIGN_TRANSFER, message, MessageType, type Message } from './message.js';
import { Progress } from './progress.js';
import { decodeMembership, encodeMembership, invalidChange, isMembershipEntry, learnersOf, votersOf, type Membership } from './membership.js';
import { majorityValueInPlace, quorumSize, voteOutcome } from './quorum.js';
import { RaftLog } from './raft-log.js';
import { ReadOnlyQueue } from './read-only.js';
import { EMPTY_HARD_STATE, NONE, type Entry, type HardState, type NodeId, type Snapshot } from './types.js';

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

/** What the node recovered from storage. */
export interface InitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

export const EMPTY_STATE: InitialState = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };

/** A snapshot arriving in chunks. */
interface IncomingSnapshot {
  readonly meta: Snapshot['meta'];
  readonly total: number;
  /** Chunks by offset; the leader cuts a snapshot the same way every time, so offsets never overlap. */
  readonly parts: Map<number, Uint8Array>;
  received: number;
}

/**
 * The Raft state machine: pure and single-threaded. Inputs are tick(), step(), propose(), readIndex() and
 * transferLeader(); outputs accumulate in `msgs`, `readStates`, the log and `pendingSnapshot`, which RaftNode hands
 * out as Ready batches. The protected methods hold the rules the checker self-test breaks on purpose.
 */
export class Raft {
  readonly id: NodeId;
  readonly cfg: ResolvedConfig;
  readonly log: RaftLog;
  term: number;
  vote: NodeId;
  lead: NodeId = NONE;
  role: Role = 'follower';
  /** The configuration in force: the newest in the log, committed or not (thesis §4.1), else the snapshot's. */
  membership: Membership;
  voters: readonly NodeId[] = [];
  learners: readonly NodeId[] = [];
  /** Every member but this node: whom a leader replicates to. */
  private peers: readonly NodeId[] = [];
  /** Reused by voterValues(). */
  private readonly scratch: number[] = [];
  /** Progress of every member (this node included) while leading. */
  prs = new Map<NodeId, Progress>();
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** Ticks since this node started: the clock the lease is measured on. */
  now = 0;
  /** The newest snapshot: made locally (compact) or received; sent to followers that fell behind it. */
  snapshot: Snapshot | null;
  /** A snapshot received from the leader and not yet persisted and applied. */
  pendingSnapshot: Snapshot | null = null;

  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Tick of the last message from a current leader; boot counts as one, so a restarted voter keeps the lease rule. */
  private lastLeaderContact = 0;
  private leadTransferee: NodeId = NONE;
  /** Set once TimeoutNow is sent: the target may win votes at any moment, so the lease is void until the fence moves. */
  private leaseVoid = false;
  /**
   * This term's transfer fence (a tick of this term's leader): TimeoutNow messages stamped before it are void. The
   * leader moves it to `now` when it abandons a transfer whose TimeoutNow went out; its messages carry it, followers
   * keep the highest they heard, and a voter that knows it refuses a transfer campaign started by an older TimeoutNow.
   * The leader counts toward its lease only acknowledgements of messages carrying the fence, so every voter backing
   * the lease refuses such a campaign (docs/architecture.md, "Leadership transfer").
   */
  transferFence = 0;
  private readonly readOnly = new ReadOnlyQueue();
  /** ReadIndex requests held until this leader has committed an entry of its own term. */
  private pendingReads: { from: NodeId; context: string }[] = [];
  private incoming: IncomingSnapshot | null = null;
  /** The configuration at the snapshot (or the initial one), and the configuration entries in the log after it. */
  private baseMembership: Membership;
  private confs: { readonly index: number; readonly membership: Membership }[] = [];

  constructor(config: RaftConfig, state: InitialState = EMPTY_STATE) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.term = state.hardState.term;
    this.vote = state.hardState.vote;
    this.snapshot = state.snapshot;
    this.log = new RaftLog(state.snapshot?.meta ?? null, state.entries, state.hardState.commit);
    this.membership = this.baseMembership = state.snapshot?.meta.membership ?? this.cfg.membership;
    this.applyMembership(this.membership);
    this.trackConfigEntries(state.entries.filter((e) => e.index > this.log.snapshotIndex()));
    this.becomeFollower(this.term, NONE);
  }

  // ---- inputs -------------------------------------------------------------------------------------------------

  tick(): void {
    this.now++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  step(m: Message): void {
    // Judged before the term changes below: the fence and the leader it belongs to are this term's.
    const forced = this.honorsTransfer(m);
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // Leader stickiness (thesis §4.2.3): while we hear from a leader, a vote request is a disruption, not a need.
        if (!forced && this.inLease()) return;
      }
      if (m.type === MessageType.PreVote || (m.type === MessageType.PreVoteResp && !m.reject)) {
        // Pre-votes travel at term+1 without changing anybody's term.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
        // A leader cut off by a partition learns of the newer term and steps down.
        this.send(message({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term }));
      } else if (m.type === MessageType.PreVote) {
        this.send(message({ type: MessageType.PreVoteResp, from: this.id, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m, forced);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  /** Appends client data on the leader; null when this node cannot take proposals now. */
  propose(data: readonly Uint8Array[]): { term: number; index: number } | null {
    if (this.role !== 'leader' || this.leadTransferee !== NONE) return null;
    const first = this.log.lastIndex() + 1;
    this.appendEntries(data);
    this.bcastAppend();
    return { term: this.term, index: first };
  }

  /**
   * Appends a configuration change on the leader (one server at a time, thesis §4.1); it takes effect here at once and
   * on each member as it appends it. Returns the reason when the change is refused.
   */
  proposeMembership(next: Membership): { term: number; index: number } | string {
    const refusal = this.membershipChangeRefusal(next);
    if (refusal !== null) return refusal;
    const first = this.log.lastIndex() + 1;
    this.appendEntries([encodeMembership(next)]);
    this.bcastAppend();
    return { term: this.term, index: first };
  }

  /** An entry of the current term is committed: a new leader then knows the commit index (thesis §6.4). */
  committedInTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** Index of a configuration entry not yet committed, or 0. */
  pendingMembershipIndex(): number {
    const last = this.confs[this.confs.length - 1];
    return last && last.index > this.log.committed ? last.index : 0;
  }

  /** The configuration in force at `index` (at or after the snapshot): what a snapshot up to `index` must carry. */
  membershipAt(index: number): Membership {
    let m = this.baseMembership;
    for (const c of this.confs) if (c.index <= index) m = c.membership;
    return m;
  }

  /** Starts a linearizable read; its ReadState arrives in a later Ready. False when no leader is known. */
  readIndex(context: string): boolean {
    if (this.role === 'leader') {
      this.handleReadIndex(this.id, context);
      return true;
    }
    if (this.lead === NONE) return false;
    this.send(message({ type: MessageType.ReadIndex, from: this.id, to: this.lead, term: this.term, context }));
    return true;
  }

  /** Hands leadership to `to` (Raft thesis §3.10); false when this node is not leader or `to` is not a voter. */
  transferLeader(to: NodeId): boolean {
    if (this.role !== 'leader' || to === this.id || !this.voters.includes(to)) return false;
    if (this.leadTransferee === to) return true;
    this.leadTransferee = to;
    this.electionElapsed = 0; // the transfer must finish within one election timeout
    const pr = this.prs.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
    return true;
  }

  /** Starts an election now (used by a single-member cluster and by tests). */
  campaign(): void {
    if (this.role !== 'leader') this.hup(null);
  }

  /** The caller made a snapshot of its state up to `snapshot.meta.index`; the log before it is dropped. */
  compact(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.log.snapshotIndex()) return;
    this.baseMembership = this.membershipAt(snapshot.meta.index);
    this.confs = this.confs.filter((c) => c.index > snapshot.meta.index);
    this.log.compact(snapshot.meta.index);
    this.snapshot = snapshot;
  }

  // ---- called by RaftNode once a Ready is persisted -------------------------------------------------------------

  entriesStable(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role === 'leader') {
      this.prs.get(this.id)!.maybeUpdate(this.log.stableIndex);
      if (this.maybeCommit()) this.onCommitAdvanced();
    }
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /**
   * True while a quorum acknowledged, within the lease window, a message this leader sent in its current term at or
   * after its transfer fence.
   */
  hasValidLease(): boolean {
    if (this.role !== 'leader' || this.leaseVoid || !this.cfg.checkQuorum) return false;
    const start = this.leaseStart();
    return start >= this.transferFence && this.now < start + this.cfg.leaseTicks;
  }

  // ---- rules the checker self-test breaks on purpose --------------------------------------------------------

  /** Figure 8: only an entry of the current term is committed by counting replicas. */
  protected canCommit(index: number): boolean {
    return this.log.term(index) === this.term;
  }

  /** §5.2: one vote per term, to the first candidate that asks (or the same one again). */
  protected canVote(m: Message): boolean {
    return (
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term)
    );
  }

  /** §5.4.1: only a candidate whose log is at least as up to date as ours. */
  protected candidateUpToDate(m: Message): boolean {
    return this.log.isUpToDate(m.index, m.logTerm);
  }

  /** The tick since which a quorum has acknowledged this leader: the quorum-th newest acknowledged stamp. */
  protected leaseStart(): number {
    const xs = this.voterValues();
    for (let i = 0; i < xs.length; i++) {
      const v = this.voters[i]!;
      xs[i] = v === this.id ? this.now : this.prs.get(v)!.ackedStamp;
    }
    return majorityValueInPlace(xs);
  }

  /**
   * Whether a vote request is a transfer campaign this node must not obstruct with leader stickiness: the leader of
   * this node's term asked for it with a TimeoutNow stamped at or after the transfer fence this node knows. A node
   * that has not heard from a leader since it started (`lead` unknown) cannot know the fence, so it refuses too.
   */
  protected honorsTransfer(m: Message): boolean {
    if (m.type !== MessageType.Vote || m.context !== CAMPAIGN_TRANSFER || this.lead === NONE) return false;
    return m.term > this.term + 1 || m.stamp >= this.transferFence;
  }

  /** A TimeoutNow stamped before the fence belongs to a transfer the leader gave up: campaigning would only depose it. */
  protected obeysTimeoutNow(m: Message): boolean {
    return m.stamp >= this.transferFence;
  }

  /** Why `next` may not be proposed now (thesis §4.1), or null. */
  protected membershipChangeRefusal(next: Membership): string | null {
    if (this.role !== 'leader') return 'this node is not the leader';
    if (this.leadTransferee !== NONE) return 'leadership is being handed over';
    // A new leader may hold an uncommitted change of an earlier term that it cannot see is pending until its own
    // no-op commits; changing again before that could skip a configuration (the single-server change bug, thesis §4.1).
    if (!this.committedInTerm()) return 'this leader has not yet committed an entry of its term; retry in a moment';
    const pending = this.pendingMembershipIndex();
    if (pending > 0) return `another membership change (log index ${pending}) is still in progress`;
    const problem = invalidChange(this.membership, next);
    if (problem) return problem;
    if (!votersOf(next).includes(this.id)) return 'the leader cannot remove or demote itself; transfer leadership first';
    return null;
  }

  // ---- roles ----------------------------------------------------------------------------------------------------

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
    if (lead !== NONE) this.lastLeaderContact = this.now;
  }

  private becomePreCandidate(): void {
    // Term and vote stay: a pre-election changes nothing durable, so a partitioned node cannot inflate terms.
    this.role = 'pre-candidate';
    this.lead = NONE;
    this.votes.clear();
    this.resetRandomizedElectionTimeout();
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    this.prs.get(this.id)!.becomeReplicate();
    // §8: a no-op of the new term commits everything before it, and lets ReadIndex learn the commit index. The first
    // leader of an empty log writes the configuration instead, so that every log says from index 1 who the members
    // are: a node that joins later and replicates from the start then knows the configuration at every index.
    this.appendEntries([this.log.lastIndex() === 0 ? encodeMembership(this.membership) : new Uint8Array(0)]);
    this.bcastAppend();
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
      this.transferFence = 0;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.leaseVoid = false;
    this.votes.clear();
    this.readOnly.clear();
    this.pendingReads = [];
    this.prs = new Map();
    for (const m of this.membership.members) this.addProgress(m.id);
  }

  private addProgress(id: NodeId): void {
    const pr = new Progress(this.log.lastIndex() + 1, this.cfg.maxInflightMsgs);
    if (id === this.id) pr.match = this.log.stableIndex;
    this.prs.set(id, pr);
  }

  // ---- membership -----------------------------------------------------------------------------------------------

  /** Puts `m` in force: who votes, who replicates, and (on a leader) whose progress is tracked. */
  private applyMembership(m: Membership): void {
    this.membership = m;
    this.voters = votersOf(m);
    this.learners = learnersOf(m);
    this.peers = m.members.filter((x) => x.id !== this.id).map((x) => x.id);
    if (this.role !== 'leader') return;
    for (const x of m.members) if (!this.prs.has(x.id)) this.addProgress(x.id);
    for (const id of [...this.prs.keys()]) if (!m.members.some((x) => x.id === id)) this.prs.delete(id);
    if (this.leadTransferee !== NONE && !this.voters.includes(this.leadTransferee)) this.leadTransferee = NONE;
  }

  /** Entries just appended to the log: a configuration entry takes effect as soon as it is in the log. */
  private trackConfigEntries(entries: readonly Entry[]): void {
    let changed = false;
    for (const e of entries) {
      if (!isMembershipEntry(e.data)) continue;
      this.confs.push({ index: e.index, membership: decodeMembership(e.data) });
      changed = true;
    }
    if (changed) this.applyMembership(this.confs[this.confs.length - 1]!.membership);
  }

  /** The log from `index` on was replaced: configurations of the lost suffix no longer count. */
  private untrackConfigEntriesFrom(index: number): void {
    const kept = this.confs.filter((c) => c.index < index);
    if (kept.length === this.confs.length) return;
    this.confs = kept;
    this.applyMembership(kept[kept.length - 1]?.membership ?? this.baseMembership);
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick);
  }

  private promotable(): boolean {
    return this.voters.includes(this.id);
  }

  private isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  private inLease(): boolean {
    if (!this.cfg.checkQuorum) return false;
    return this.role === 'leader' || this.now - this.lastLeaderContact < this.cfg.electionTick;
  }

  // ---- ticks ----------------------------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(null);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, NONE);
        return;
      }
      this.abandonTransfer();
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastKey() ?? '');
    }
    for (const [id, pr] of this.prs) {
      // A lost snapshot chunk leaves the follower waiting for the rest; start over after two election timeouts.
      if (pr.state === 'snapshot' && this.now - pr.snapshotSentAt >= 2 * this.cfg.electionTick) {
        pr.becomeProbe();
        this.sendAppend(id);
      }
    }
  }

  /** CheckQuorum: did a quorum talk to us during the last election timeout? Resets the record for the next one. */
  private quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.prs) {
      if ((id === this.id || pr.recentActive) && this.isVoter(id)) active++;
      pr.recentActive = false;
    }
    return active >= quorumSize(this.voters.length);
  }

  // ---- elections ------------------------------------------------------------------------------------------------

  /** Starts an election; `transfer` is the stamp of the TimeoutNow that asked for it, null for an ordinary one. */
  private hup(transfer: number | null): void {
    if (!this.promotable()) return;
    if (this.cfg.preVote && transfer === null) this.startCampaign(true, null);
    else this.startCampaign(false, transfer);
  }

  private startCampaign(pre: boolean, transfer: number | null): void {
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    this.votes.set(this.id, true);
    if (this.poll() === 'won') {
      if (pre) this.startCampaign(false, null);
      else this.becomeLeader();
      return;
    }
    const term = pre ? this.term + 1 : this.term;
    for (const v of this.voters) {
      if (v === this.id) continue;
      this.send(
        message({
          type: pre ? MessageType.PreVote : MessageType.Vote,
          from: this.id,
          to: v,
          term,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          context: transfer !== null ? CAMPAIGN_TRANSFER : '',
          stamp: transfer ?? 0,
        }),
      );
    }
  }

  private poll(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const g of this.votes.values()) g ? granted++ : rejected++;
    return voteOutcome(this.voters.length, granted, rejected);
  }

  private handleVoteRequest(m: Message, forced: boolean): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    // Stickiness applies at any term, not only to requests that raise ours: a term adopted from some other message
    // (a rejected PreVoteResp, say) must not open a window to vote while a leader may still count on our lease.
    if (!forced && this.role !== 'leader' && this.inLease()) {
      this.send(message({ type: respType, from: this.id, to: m.from, term: this.term, reject: true }));
      return;
    }
    if (this.canVote(m) && this.candidateUpToDate(m)) {
      this.send(message({ type: respType, from: this.id, to: m.from, term: m.term }));
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(message({ type: respType, from: this.id, to: m.from, term: this.term, reject: true }));
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        // Someone won this term.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        if ((m.type === MessageType.PreVoteResp) !== (this.role === 'pre-candidate')) return;
        if (!this.voters.includes(m.from)) return; // only members' votes count
        this.votes.set(m.from, !m.reject);
        const outcome = this.poll();
        if (outcome === 'won') {
          if (this.role === 'pre-candidate') this.startCampaign(false, null);
          else this.becomeLeader();
        } else if (outcome === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        break;
      }
    }
  }

  // ---- follower -------------------------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.heardFromLeader(m);
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.heardFromLeader(m);
        this.handleHeartbeat(m);
        break;
      case MessageType.Snap:
        this.heardFromLeader(m);
        this.handleSnapshotChunk(m);
        break;
      case MessageType.TimeoutNow:
        if (this.obeysTimeoutNow(m)) this.hup(m.stamp);
        break;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        break;
    }
  }

  private heardFromLeader(m: Message): void {
    this.electionElapsed = 0;
    this.lead = m.from;
    this.lastLeaderContact = this.now;
    this.transferFence = Math.max(this.transferFence, m.fence);
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.acceptAppend(m, this.log.committed);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.entries);
    if (lastNew !== undefined && m.entries.length > 0) {
      // A conflicting suffix may have been cut off: recount the configurations from the first entry of this App.
      const first = m.entries[0]!.index;
      this.untrackConfigEntriesFrom(first);
      this.trackConfigEntries(this.log.slice(first, this.log.lastIndex() + 1) ?? []);
    }
    if (lastNew !== undefined) {
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.acceptAppend(m, lastNew);
      return;
    }
    // Tell the leader where our log might match: the last index at or below its probe whose term is not newer.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const logTerm = this.log.term(hint) ?? 0;
    this.send(message({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, stamp: m.stamp, index: m.index, reject: true, rejectHint: hint, logTerm }));
  }

  /** Answers App `m`: this log matches the leader's up to `index`. */
  private acceptAppend(m: Message, index: number): void {
    this.send(message({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, stamp: m.stamp, index }));
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(match, commit), which our log is known to hold.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(
      message({ type: MessageType.HeartbeatResp, from: this.id, to: m.from, term: this.term, context: m.context, stamp: m.stamp }),
    );
  }

  private handleSnapshotChunk(m: Message): void {
    const c = m.snapshot!;
    let inc = this.incoming;
    if (!inc || inc.meta.index !== c.meta.index || inc.meta.term !== c.meta.term) {
      // A different snapshot starts over; chunks may arrive in any order and more than once.
      inc = this.incoming = { meta: c.meta, total: c.total, parts: new Map(), received: 0 };
    }
    if (!inc.parts.has(c.offset) && c.offset + c.data.length <= inc.total) {
      inc.parts.set(c.offset, c.data);
      inc.received += c.data.length;
    }
    if (inc.received < inc.total || (inc.total === 0 && !inc.parts.has(0))) return;
    this.incoming = null;
    const data = assemble(inc.parts, inc.total);
    const index = this.restore({ meta: inc.meta, data }) ? this.log.lastIndex() : this.log.committed;
    this.send(message({ type: MessageType.AppResp, from: this.id, to: m.from, term: this.term, index, stamp: m.stamp }));
  }

  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // We hold the snapshot's last entry, so everything up to it is ours already: just learn it is committed.
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s.meta);
    this.snapshot = s;
    this.pendingSnapshot = s;
    this.baseMembership = s.meta.membership;
    this.confs = [];
    this.applyMembership(s.meta.membership);
    return true;
  }

  // ---- leader ---------------------------------------------------------------------------------------------------

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    switch (m.type) {
      case MessageType.AppResp:
        if (pr) this.handleAppResp(m, pr);
        break;
      case MessageType.HeartbeatResp:
        if (pr) this.handleHeartbeatResp(m, pr);
        break;
      case MessageType.ReadIndex:
        if (pr) this.handleReadIndex(m.from, m.context);
        break;
    }
  }

  private handleAppResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.ackedStamp = Math.max(pr.ackedStamp, m.stamp);
    if (m.reject) {
      const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.paused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
    else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) this.onCommitAdvanced();
    else if (wasPaused) this.sendAppend(m.from);
    while (this.sendAppend(m.from, false)) {
      // keep the pipeline full
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.ackedStamp = Math.max(pr.ackedStamp, m.stamp);
    pr.probeSent = false;
    // An App or its answer may have been lost; free a slot so a full window cannot stall this follower for good.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context === '' || !this.isVoter(m.from)) return;
    if (this.readOnly.ack(m.from, m.context) < quorumSize(this.voters.length)) return;
    for (const r of this.readOnly.advance(m.context)) this.answerRead(r.from, r.index, r.context);
  }

  private handleReadIndex(from: NodeId, context: string): void {
    if (!this.committedInTerm()) {
      // Until our no-op commits we do not know the commit index of the previous leader (thesis §6.4 step 1).
      this.pendingReads.push({ from, context });
      return;
    }
    if (this.voters.length === 1 || (this.cfg.readOnly === 'lease' && this.hasValidLease())) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    this.bcastHeartbeat(this.readOnly.add(this.term, this.log.committed, from, context, this.id));
  }

  private answerRead(from: NodeId, index: number, context: string): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send(message({ type: MessageType.ReadIndexResp, from: this.id, to: from, term: this.term, index, context }));
  }

  private onCommitAdvanced(): void {
    const held = this.pendingReads;
    this.pendingReads = [];
    for (const r of held) this.handleReadIndex(r.from, r.context);
    this.bcastAppend();
  }

  private maybeCommit(): boolean {
    const xs = this.voterValues();
    for (let i = 0; i < xs.length; i++) xs[i] = this.prs.get(this.voters[i]!)!.match;
    const index = majorityValueInPlace(xs);
    if (index <= this.log.committed || !this.canCommit(index)) return false;
    return this.log.commitTo(index);
  }

  private appendEntries(data: readonly Uint8Array[]): void {
    let index = this.log.lastIndex();
    const entries: Entry[] = data.map((d) => ({ term: this.term, index: ++index, data: d }));
    this.log.append(entries);
    this.trackConfigEntries(entries);
  }

  private bcastAppend(): void {
    for (const id of this.peers) this.sendAppend(id);
  }

  private bcastHeartbeat(context: string): void {
    for (const v of this.peers) {
      const commit = Math.min(this.prs.get(v)!.match, this.log.committed);
      this.send(
        message({ type: MessageType.Heartbeat, from: this.id, to: v, term: this.term, commit, context, stamp: this.now, fence: this.transferFence }),
      );
    }
  }

  /** Sends what `to` is missing (entries, or a snapshot when they are compacted away); false when nothing was sent. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.prs.get(to)!;
    if (pr.paused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxSizePerMsg);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      message({
        type: MessageType.App,
        from: this.id,
        to,
        term: this.term,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
        stamp: this.now,
        fence: this.transferFence,
      }),
    );
    if (entries.length > 0) pr.sentEntries(entries[entries.length - 1]!.index);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.snapshot;
    if (!snap || !pr.recentActive) return false; // an unreachable follower gets its snapshot once it answers
    pr.becomeSnapshot(snap.meta.index, this.now);
    const size = this.cfg.maxSizePerMsg;
    const total = snap.data.length;
    for (let offset = 0; offset === 0 || offset < total; offset += size) {
      const data = snap.data.subarray(offset, Math.min(offset + size, total));
      this.send(
        message({
          type: MessageType.Snap,
          from: this.id,
          to,
          term: this.term,
          stamp: this.now,
          fence: this.transferFence,
          snapshot: { meta: snap.meta, offset, total, data },
        }),
      );
    }
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseVoid = true;
    this.send(message({ type: MessageType.TimeoutNow, from: this.id, to, term: this.term, stamp: this.now }));
  }

  /**
   * A transfer that did not finish within an election timeout is given up. If its TimeoutNow went out, it may still
   * arrive late; the fence moves to now, so that TimeoutNow is void for every voter that hears of the fence, and the
   * lease returns once a quorum acknowledged a message carrying it.
   */
  private abandonTransfer(): void {
    this.leadTransferee = NONE;
    if (!this.leaseVoid) return;
    this.leaseVoid = false;
    this.transferFence = this.now;
  }

  /** A scratch array with one slot per voter, for the majority checks a leader makes on every acknowledgement. */
  private voterValues(): number[] {
    this.scratch.length = this.voters.length;
    return this.scratch;
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}

function assemble(parts: ReadonlyMap<number, Uint8Array>, total: number): Uint8Array {
  if (parts.size === 1) return parts.values().next().value!;
  const out = new Uint8Array(total);
  for (const [offset, data] of parts) out.set(data, offset);
  return out;
}
