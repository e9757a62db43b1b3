import {
  EMPTY_HARD_STATE,
  isMembershipEntry,
  membershipOf,
  RaftNode,
  type Entry,
  type HardState,
  type Membership,
  type Message,
  type RaftConfig,
  type RaftConstructor,
  type ReadState,
  type Ready,
  type Snapshot,
} from '../../lib/raft/index.js';
import type { EventQueue } from './event-queue.js';
import { decodeCommand, encodeCommand, KvMachine } from './kv-machine.js';
import type { KvInput, KvOutput } from './kv-model.js';
import { logHolds, newestMembership, type MemberHooks, type SimMember } from './member.js';
import type { Prng } from '../support/prng.js';

/** What survives a crash. */
interface Durable {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

interface Pending {
  readonly client: number;
  readonly op: number;
  readonly input: KvInput;
  readonly done: (out: KvOutput | null) => void;
  readonly deadline: number;
}

export interface CoreMemberOptions {
  readonly config: Omit<RaftConfig, 'random'>;
  readonly core?: RaftConstructor;
  /** Real-time ms per tick of this node: its clock skew. */
  readonly tickMs: number;
  readonly snapshotEvery: number;
}

/**
 * A member running the bare core with a model of a disk: fast, for thousands of seeds. A Ready is persisted after a
 * random disk delay; a crash in that window keeps nothing, or a random prefix of its entries (a torn write), and its
 * messages are never sent. Clients are served the way an application would: writes on the leader, matched by log
 * index; reads by ReadIndex once applied.
 */
export class CoreMember implements SimMember {
  raft: RaftNode | null = null;
  kv = new KvMachine();
  appliedIndex = 0;
  readonly startFailure = null;
  private durable: Durable = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };
  private persisting: Ready | null = null;
  private incarnation = 0;
  private waitingReads: ReadState[] = [];
  private readonly writes = new Map<number, Pending>();
  private readonly reads = new Map<string, Pending>();

  constructor(
    readonly id: string,
    private readonly opts: CoreMemberOptions,
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly send: (m: Message) => void,
    private readonly hooks: MemberHooks,
  ) {}

  get alive(): boolean {
    return this.raft !== null;
  }

  durableLast(): { index: number; term: number } {
    const d = this.durable;
    const last = d.entries[d.entries.length - 1];
    if (last) return { index: last.index, term: last.term };
    return { index: d.snapshot?.meta.index ?? 0, term: d.snapshot?.meta.term ?? 0 };
  }

  hasValidLease(): boolean {
    return this.raft?.hasValidLease() ?? false;
  }

  durableMembership(): Membership {
    const d = this.durable;
    const c = this.opts.config;
    return newestMembership(d.snapshot?.meta ?? null, d.entries, c.membership ?? membershipOf(c.voters ?? []));
  }

  durableHolds(index: number, term: number): boolean {
    return logHolds(this.durable.snapshot?.meta ?? null, this.durable.entries, index, term);
  }

  proposeMembership(next: Membership): boolean {
    const r = this.raft;
    if (!r) return false;
    const at = r.core.proposeMembership(next);
    this.pump();
    return typeof at !== 'string';
  }

  step(m: Message): void {
    this.input((r) => r.step(m));
  }

  boot(): void {
    const d = this.durable;
    const rng = this.rng.fork();
    this.raft = new RaftNode(
      { ...this.opts.config, random: () => rng.next() },
      { hardState: d.hardState, snapshot: d.snapshot, entries: d.entries },
      this.opts.core,
    );
    this.kv = d.snapshot ? KvMachine.restore(d.snapshot.data) : new KvMachine();
    this.appliedIndex = d.snapshot?.meta.index ?? 0;
    this.waitingReads = [];
    const inc = ++this.incarnation;
    const tick = () => {
      if (this.incarnation !== inc) return;
      this.raft!.tick();
      this.expire();
      this.pump();
      this.queue.schedule(this.opts.tickMs, tick);
    };
    this.queue.schedule(this.rng.range(0, this.opts.tickMs), tick);
    this.pump();
  }

  crash(afterSync = false): void {
    if (!this.raft) return;
    const rd = this.persisting;
    if (rd && afterSync) this.persist(rd, rd.entries.length);
    else if (rd && this.rng.chance(0.5)) this.persist(rd, this.rng.int(0, rd.entries.length + 1));
    this.raft = null;
    this.persisting = null;
    this.incarnation++;
    for (const p of [...this.writes.values(), ...this.reads.values()]) p.done(null);
    this.writes.clear();
    this.reads.clear();
  }

  transferLeader(to: string): void {
    this.input((r) => r.transferLeader(to));
  }

  submit(input: KvInput, client: number, op: number, timeoutMs: number, done: (out: KvOutput | null) => void): boolean {
    const r = this.raft;
    if (!r) return false;
    const pending = { client, op, input, done, deadline: this.queue.now + timeoutMs };
    if (input.op === 'get') {
      const ctx = `c${client}-${op}`;
      if (!r.readIndex(ctx)) return false;
      this.reads.set(ctx, pending);
    } else {
      const at = r.propose([encodeCommand({ client, op, input })]);
      if (!at) return false;
      this.writes.set(at.index, pending);
    }
    this.pump();
    return true;
  }

  private input(fn: (r: RaftNode) => void): void {
    if (!this.raft) return;
    fn(this.raft);
    this.pump();
  }

  private expire(): void {
    for (const map of [this.writes, this.reads] as Map<unknown, Pending>[]) {
      for (const [k, p] of map) {
        if (p.deadline > this.queue.now) continue;
        map.delete(k);
        p.done(null);
      }
    }
  }

  private pump(): void {
    const r = this.raft;
    if (!r || this.persisting || !r.hasReady()) return;
    const rd = r.ready();
    if (rd.softState) this.hooks.softState(this, rd.softState);
    this.persisting = rd;
    const inc = this.incarnation;
    const delay = rd.mustSync ? this.rng.range(0.05, this.rng.chance(0.02) ? 20 : 1.5) : 0.01;
    this.queue.schedule(delay, () => {
      if (this.incarnation === inc) this.finish(rd);
    });
  }

  private finish(rd: Ready): void {
    const r = this.raft!;
    this.persist(rd, rd.entries.length);
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot) {
      this.hooks.snapshot?.(this, rd.snapshot.meta, 'installed');
      this.kv = KvMachine.restore(rd.snapshot.data);
      this.appliedIndex = rd.snapshot.meta.index;
      for (const [i, p] of this.writes) {
        if (i > rd.snapshot.meta.index) continue;
        this.writes.delete(i);
        p.done(null);
      }
    }
    for (const e of rd.committedEntries) this.apply(e);
    this.waitingReads.push(...rd.readStates);
    this.persisting = null;
    r.advance(rd);
    this.serveReads();
    this.maybeSnapshot();
    this.pump();
  }

  private apply(e: Entry): void {
    this.hooks.applied(this, e);
    this.appliedIndex = e.index;
    const mine = this.writes.get(e.index);
    if (mine) this.writes.delete(e.index);
    if (e.data.length === 0 || isMembershipEntry(e.data)) {
      mine?.done(null);
      return;
    }
    const cmd = decodeCommand(e.data);
    const out = this.kv.apply(cmd.input);
    // Another entry in our slot: ours lost that slot, but could still be committed elsewhere later — unknown.
    mine?.done(mine.client === cmd.client && mine.op === cmd.op ? out : null);
  }

  /** Writes the snapshot, the first `keep` entries and (only when all entries made it) the hard state. */
  private persist(rd: Ready, keep: number): void {
    const d = this.durable;
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = [];
    }
    if (keep > 0) {
      const first = rd.entries[0]!.index;
      d.entries = d.entries.filter((e) => e.index < first).concat(rd.entries.slice(0, keep));
    }
    if (keep === rd.entries.length && rd.hardState) d.hardState = rd.hardState;
  }

  private serveReads(): void {
    const still: ReadState[] = [];
    for (const rs of this.waitingReads) {
      if (rs.index > this.appliedIndex) {
        still.push(rs);
        continue;
      }
      const p = this.reads.get(rs.context);
      if (!p) continue;
      this.reads.delete(rs.context);
      p.done(this.kv.apply(p.input));
    }
    this.waitingReads = still;
  }

  private maybeSnapshot(): void {
    const core = this.raft!.core;
    const applied = this.appliedIndex;
    if (applied - core.log.snapshotIndex() < this.opts.snapshotEvery) return;
    const snap: Snapshot = {
      meta: { index: applied, term: core.log.term(applied)!, membership: core.membershipAt(applied) },
      data: this.kv.snapshot(),
    };
    this.hooks.snapshot?.(this, snap.meta, 'made');
    this.durable.snapshot = snap;
    this.durable.entries = this.durable.entries.filter((e) => e.index > applied);
    this.raft!.compact(snap);
  }
}
