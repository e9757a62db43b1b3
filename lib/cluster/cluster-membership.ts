import { votersOf, type Member, type Membership, type MemberRole, type NodeId } from '../raft/index.js';
import { fromWire } from './cluster-store.js';
import { MembershipChangeError, NoLeaderException, NotLeaderException } from './errors.js';
import type { Clock, Timers, TimerHandle } from '../io/clock.js';
import type { Network } from '../io/network.js';
import type { ClusterLogger } from './logger.js';
import type { RaftRuntime } from './raft-runtime.js';
import { decodeReply, encodeRequest, type MemberRequest } from './rpc.js';

/** What `members.add()` takes. */
export interface NewMember {
  readonly id: NodeId;
  /** 'host:port' where the new node listens for the cluster. */
  readonly address: string;
  /** Default 'learner': a voter joins the quorum only once caught up, so add learners and promote them. */
  readonly role?: MemberRole;
  /** A learner that automatic promotion passes over. */
  readonly pinned?: boolean;
}

/** A committed membership change as this node saw it, for status pages. */
export interface MembershipEvent {
  readonly index: number;
  /** Wall-clock ms when this node applied it. */
  readonly at: number;
  readonly change: string;
}

export interface MembershipParts {
  readonly runtime: RaftRuntime;
  readonly network: Network;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly targetVoters: number;
  /** null: unreachable voters are never replaced. */
  readonly autoRemoveAfterMs: number | null;
  /** This node's address and wishes, for joining. */
  readonly self: { readonly address: string; readonly role: MemberRole };
  readonly join: readonly string[];
  /**
   * Addresses from this node's own member list, by id. They win over the replicated configuration's for dialing, so
   * that each node reaches a static member by its own route (a host name here, an IP or a proxy there); members
   * added at runtime are dialed at the address they advertised.
   */
  readonly localAddresses?: ReadonlyMap<NodeId, string>;
  readonly wallClock: () => number;
}

/** Membership changes kept for status pages. */
const HISTORY = 50;

/**
 * Membership at runtime, one server at a time: the API (`members.add/remove/promote/demote`, from any node: a follower
 * asks the leader), the leader's side of joins, the leader's upkeep (promote caught-up learners up to `targetVoters`,
 * replace voters unreachable for `autoRemoveAfter`), joining through seeds, and leaving on shutdown.
 */
export class ClusterMembership {
  private readonly history: MembershipEvent[] = [];
  private previous: Membership | null = null;
  private upkeepTimer: TimerHandle | null = null;
  /** The leader's commit index at the previous upkeep round: a learner that reached it keeps up with the log. */
  private commitAtLastRound = Infinity;
  private leaderSince = 0;
  private stopped = false;
  /** A change the upkeep started and waits for; upkeep makes one change at a time. */
  private upkeepBusy = false;
  /** Join requests on the leader, one after another. */
  private joins: Promise<unknown> = Promise.resolve();

  constructor(private readonly parts: MembershipParts) {
    parts.runtime.onMembershipChange((m, committedAt) => {
      if (committedAt === null) this.dialMembers(m.members);
      else this.record(m, committedAt);
    });
    parts.runtime.onLeadershipChange((s) => {
      if (s.isLeader) {
        this.leaderSince = parts.clock.now();
        this.commitAtLastRound = Infinity;
      }
    });
  }

  /** Starts the leader's upkeep and, for a node that is not a member yet, joining through the seeds. */
  start(): void {
    this.previous = this.current;
    this.scheduleUpkeep();
    if (this.parts.join.length > 0 && !this.isMember(this.parts.runtime.nodeId)) void this.joinLoop();
  }

  stop(): void {
    this.stopped = true;
    this.upkeepTimer?.cancel();
  }

  /** The configuration in force here: the newest in this node's log. */
  get current(): Membership {
    return this.parts.runtime.membership;
  }

  /** Committed membership changes as this node saw them, newest first. */
  changes(): readonly MembershipEvent[] {
    return [...this.history].reverse();
  }

  add(member: NewMember): Promise<void> {
    return this.request({ kind: 'member', op: 'add', id: member.id, address: member.address, role: member.role ?? 'learner', pinned: member.pinned });
  }

  remove(id: NodeId): Promise<void> {
    return this.request({ kind: 'member', op: 'remove', id });
  }

  promote(id: NodeId): Promise<void> {
    return this.request({ kind: 'member', op: 'promote', id });
  }

  demote(id: NodeId): Promise<void> {
    return this.request({ kind: 'member', op: 'demote', id });
  }

  /**
   * Removes this node (for leaveOnShutdown): a leader hands over first, then asks its successor. Skipped, with a log
   * line, when this node is the last voter.
   */
  async leave(): Promise<void> {
    const me = this.parts.runtime.nodeId;
    if (!this.isMember(me)) return;
    const voters = votersOf(this.current);
    if (voters.length === 1 && voters[0] === me) {
      this.parts.logger.log('leaveOnShutdown: this node is the last voter; it stays a member so the data is not orphaned');
      return;
    }
    try {
      await this.remove(me);
      this.parts.logger.log('left the cluster (leaveOnShutdown)');
    } catch (e) {
      this.parts.logger.warn(`leaveOnShutdown: could not leave the cluster: ${(e as Error).message}`);
    }
  }

  /** A membership request from a peer (or this node): run on the leader, passed to it from elsewhere. */
  readonly handle = async (req: MemberRequest, from: NodeId): Promise<unknown> => {
    if (req.op === 'ping') return this.parts.runtime.nodeId;
    const lead = this.parts.runtime.leadership;
    if (!lead.isLeader) {
      // A joining node knows only seeds; any member passes its request on. Other requests name the leader to retry at.
      if (req.op !== 'join' || from === lead.leaderId) throw new NotLeaderException(lead.leaderId);
      if (!lead.leaderId) throw new NoLeaderException();
      return this.callLeader(lead.leaderId, req);
    }
    return this.runOnLeader(req);
  };

  // ---- the leader's side ------------------------------------------------------------------------------------------

  private async runOnLeader(req: MemberRequest): Promise<unknown> {
    if (req.op === 'join') {
      const turn = this.joins.then(() => this.join(req));
      this.joins = turn.catch(() => undefined);
      return turn;
    }
    const m = this.current;
    const target = m.members.find((x) => x.id === req.id);
    const me = this.parts.runtime.nodeId;
    switch (req.op) {
      case 'add': {
        if (target) throw new MembershipChangeError(`${req.id} is already a member (${target.role} at ${target.address}); remove it first to re-add it`);
        const address = req.address ?? '';
        await this.checkReachable(req.id, address);
        await this.change(
          replace(m, req.id, { id: req.id, address, role: req.role ?? 'learner', ...(req.pinned && { pinned: true }) }),
          `add ${req.id} (${req.role ?? 'learner'})`,
        );
        return null;
      }
      case 'remove':
      case 'demote': {
        if (!target) throw new MembershipChangeError(`${req.id} is not a member (members: ${m.members.map((x) => x.id).join(', ')})`);
        if (req.op === 'demote' && target.role === 'learner') throw new MembershipChangeError(`${req.id} is a learner already`);
        if (target.role === 'voter' && votersOf(m).length === 1) {
          throw new MembershipChangeError(`${req.id} is the last voter; add and promote another member before removing or demoting it`);
        }
        if (req.id === me) return this.handOverThen(req);
        const next = req.op === 'remove' ? { members: m.members.filter((x) => x.id !== req.id) } : replace(m, req.id, { ...target, role: 'learner' });
        await this.change(next, `${req.op} ${req.id}`);
        return null;
      }
      case 'promote': {
        if (!target) throw new MembershipChangeError(`${req.id} is not a member (members: ${m.members.map((x) => x.id).join(', ')})`);
        if (target.role === 'voter') throw new MembershipChangeError(`${req.id} is a voter already`);
        await this.waitCaughtUp(req.id);
        await this.change(replace(m, req.id, { id: target.id, address: target.address, role: 'voter' }), `promote ${req.id}`);
        return null;
      }
    }
    throw new MembershipChangeError(`unknown membership operation ${JSON.stringify(req.op)}`);
  }

  /**
   * Joins are the cluster's own requests, not a user's concurrent changes: they wait their turn here, and for a change
   * in progress (bounded), rather than fail and have the joiner back off.
   */
  private async join(req: MemberRequest): Promise<{ members: readonly Member[] }> {
    const rt = this.parts.runtime;
    await rt.waitFor(() => rt.status().membershipChange === null, this.parts.requestTimeoutMs);
    const m = this.current;
    const target = m.members.find((x) => x.id === req.id);
    const address = req.address ?? '';
    if (target && target.address === address) return this.joinReply(); // a retry, or a restart under the same name
    const entry: Member = target
      ? { ...target, address } // the same id at a new address: a replaced host
      : { id: req.id, address, role: 'learner', ...(req.role === 'learner' && { pinned: true }) };
    await this.change(replace(m, req.id, entry), `${req.id} joins as a learner at ${address}`);
    return this.joinReply();
  }

  /** The leader itself is to go: it hands leadership to a caught-up voter, which then makes the change. */
  private async handOverThen(req: MemberRequest): Promise<unknown> {
    const rt = this.parts.runtime;
    const to = rt.transferLeadership();
    if (!to) throw new MembershipChangeError(`${req.id} leads and no other voter can take over; add and promote another member first`);
    const moved = () => !rt.leadership.isLeader && rt.leadership.leaderId !== '';
    await rt.waitFor(moved, this.parts.electionTimeoutMs * 4);
    if (!moved()) throw new NoLeaderException(`leadership did not move from ${req.id} in time; retry`);
    return this.callLeader(rt.leadership.leaderId, req);
  }

  private async change(next: Membership, what: string): Promise<void> {
    // A leader that just took over (after a hand-over, say) commits its no-op within a round trip: wait for it.
    const rt = this.parts.runtime;
    await rt.waitFor(() => !rt.leadership.isLeader || rt.leaderSettled, this.parts.requestTimeoutMs);
    this.parts.logger.log(`membership change: ${what}`);
    await this.parts.runtime.proposeMembership(next);
  }

  private joinReply(): { members: readonly Member[] } {
    return { members: this.current.members };
  }

  /** A node about to be added must answer on its cluster port with its own id. */
  private async checkReachable(id: NodeId, address: string): Promise<void> {
    const call = this.parts.network.callAddress;
    if (!call) throw new MembershipChangeError('this node has no cluster port (a single member without advertise); it cannot add members');
    const timeout = this.parts.electionTimeoutMs * 4;
    let answer: unknown;
    try {
      const reply = decodeReply(await call.call(this.parts.network, address, encodeRequest({ kind: 'member', op: 'ping', id }), timeout));
      answer = reply.ok ? reply.value : new Error(reply.error.message);
    } catch (e) {
      answer = e;
    }
    if (answer instanceof Error) {
      throw new MembershipChangeError(`cannot reach ${id} at ${address}: ${answer.message}. Start it (with the same secret) before adding it`);
    }
    if (answer !== id) throw new MembershipChangeError(`${address} answers as ${String(answer)}, not ${id}`);
  }

  /** Waits (bounded) until the learner holds what was committed a moment ago, so promoting it cannot stall commits. */
  private async waitCaughtUp(id: NodeId): Promise<void> {
    const rt = this.parts.runtime;
    const mark = rt.status().commitIndex;
    const learner = () => rt.status().members.find((x) => x.id === id);
    const caughtUp = () => {
      const s = learner();
      return s !== undefined && (s.matchIndex ?? 0) >= mark && s.lastContactMs !== null && s.lastContactMs <= this.parts.electionTimeoutMs;
    };
    await rt.waitFor(() => caughtUp() || !rt.leadership.isLeader, this.parts.requestTimeoutMs);
    if (!caughtUp() || !rt.leadership.isLeader) {
      throw new MembershipChangeError(`${id} has not caught up with the log (it holds up to ${learner()?.matchIndex ?? 0} of ${mark}); retry once it has`);
    }
  }

  // ---- upkeep -----------------------------------------------------------------------------------------------------

  private scheduleUpkeep(): void {
    // A runtime that stopped on its own (a crash, a storage failure) ends the upkeep too.
    if (this.stopped || !this.parts.runtime.isRunning) return;
    this.upkeepTimer = this.parts.timers.setTimeout(() => {
      this.upkeep();
      this.scheduleUpkeep();
    }, this.parts.electionTimeoutMs);
  }

  /** One round of the leader's upkeep: at most one change, started and not awaited here. */
  private upkeep(): void {
    const rt = this.parts.runtime;
    if (!rt.isRunning || !rt.leadership.isLeader || this.upkeepBusy) return;
    const s = rt.status();
    const mark = this.commitAtLastRound;
    this.commitAtLastRound = s.commitIndex;
    if (s.membershipChange) return;
    const m = this.current;
    const voters = votersOf(m);
    const now = this.parts.clock.now();
    const caughtUp = s.members.filter(
      (x) =>
        x.membership === 'learner' &&
        !m.members.find((y) => y.id === x.id)?.pinned &&
        (x.matchIndex ?? 0) >= mark &&
        x.lastContactMs !== null &&
        x.lastContactMs <= this.parts.electionTimeoutMs,
    );
    const limit = this.parts.autoRemoveAfterMs;
    const dead =
      limit === null || now - this.leaderSince < limit
        ? undefined
        : s.members.find((x) => x.membership === 'voter' && x.role !== 'self' && (x.lastContactMs === null || x.lastContactMs > limit));
    let op: MemberRequest | null = null;
    // Removing a dead voter never lowers how many more failures the cluster survives; it raises that number when the
    // voters are even, or over the target. Otherwise it waits for a caught-up learner to take the place.
    if (dead && (caughtUp.length > 0 || voters.length % 2 === 0 || voters.length > this.parts.targetVoters)) {
      const by = caughtUp.length > 0 ? `; ${caughtUp[0]!.id} takes its place` : '';
      this.parts.logger.warn(`${dead.id} has been unreachable for over ${limit} ms (autoRemoveAfter): removing it${by}`);
      op = { kind: 'member', op: 'remove', id: dead.id };
    } else if (voters.length < this.parts.targetVoters && caughtUp.length > 0) {
      op = { kind: 'member', op: 'promote', id: caughtUp[0]!.id };
    }
    if (!op) return;
    this.upkeepBusy = true;
    this.runOnLeader(op)
      .catch((e: unknown) => this.parts.logger.log(`membership upkeep (${op.op} ${op.id}) did not finish: ${(e as Error).message}; retrying later`))
      .finally(() => (this.upkeepBusy = false));
  }

  // ---- joining ----------------------------------------------------------------------------------------------------

  private async joinLoop(): Promise<void> {
    const { network, logger, join, self, runtime } = this.parts;
    const call = network.callAddress;
    if (!call) throw new Error('joining needs a network that dials addresses');
    logger.log(`joining the cluster through ${join.join(', ')} as ${runtime.nodeId} at ${self.address}`);
    for (let attempt = 0, delay = 200; !this.stopped && runtime.isRunning; attempt++, delay = Math.min(delay * 2, 5000)) {
      const seed = join[attempt % join.length]!;
      try {
        const payload = encodeRequest({ kind: 'member', op: 'join', id: runtime.nodeId, address: self.address, role: self.role });
        const reply = decodeReply(await call.call(network, seed, payload, this.parts.requestTimeoutMs));
        if (!reply.ok) throw fromWire(reply.error);
        const members = (reply.value as { members: readonly Member[] }).members;
        // Learn the members now rather than from the log: the connection rule may have this node dial the leader.
        this.dialMembers(members);
        logger.log(`joined through ${seed}: members ${members.map((x) => `${x.id}${x.role === 'learner' ? ' (learner)' : ''}`).join(', ')}`);
        return;
      } catch (e) {
        if (this.isMember(runtime.nodeId)) return; // the log says we are in: an answer was lost
        logger.log(`joining through ${seed} failed: ${(e as Error).message}; retrying in ${delay} ms`);
      }
      await this.sleep(delay);
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------------------------

  private async request(req: MemberRequest): Promise<void> {
    const lead = this.parts.runtime.leadership;
    if (lead.isLeader) await this.runOnLeader(req);
    else if (!lead.leaderId) throw new NoLeaderException();
    else await this.callLeader(lead.leaderId, req);
  }

  private async callLeader(leaderId: NodeId, req: MemberRequest): Promise<unknown> {
    // Promotion may wait for the learner to catch up, and a removed leader hands over first: allow for both.
    const timeout = this.parts.requestTimeoutMs * 2 + this.parts.electionTimeoutMs * 4;
    const reply = decodeReply(await this.parts.network.call(leaderId, encodeRequest(req), timeout));
    if (!reply.ok) throw fromWire(reply.error);
    return reply.value;
  }

  private dialMembers(members: readonly Member[]): void {
    const local = this.parts.localAddresses;
    const routes = members.map((x) => ({ id: x.id, address: local?.get(x.id) ?? x.address }));
    this.parts.network.setMembers?.(routes.filter((x) => x.address !== ''));
  }

  private isMember(id: NodeId): boolean {
    return this.current.members.some((x) => x.id === id);
  }

  /** Logs and keeps what changed between consecutive committed configurations. */
  private record(m: Membership, index: number): void {
    const before = this.previous;
    this.previous = m;
    if (!before) return;
    const parts: string[] = [];
    for (const x of m.members) {
      const was = before.members.find((y) => y.id === x.id);
      if (!was) parts.push(`${x.id} joined as ${x.role}`);
      else if (was.role !== x.role) parts.push(`${x.id} ${x.role === 'voter' ? 'promoted to voter' : 'demoted to learner'}`);
      else if (was.address !== x.address) parts.push(`${x.id} moved to ${x.address}`);
    }
    for (const y of before.members) if (!m.members.some((x) => x.id === y.id)) parts.push(`${y.id} removed`);
    if (parts.length === 0) return;
    this.history.push({ index, at: this.parts.wallClock(), change: parts.join('; ') });
    if (this.history.length > HISTORY) this.history.shift();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.parts.timers.setTimeout(r, ms));
  }
}

/** `m` with the member `id` replaced by `member` (or added at the end). */
function replace(m: Membership, id: NodeId, member: Member): Membership {
  const i = m.members.findIndex((x) => x.id === id);
  return { members: i < 0 ? [...m.members, member] : m.members.map((x, j) => (j === i ? member : x)) };
}
