import {
  EMPTY_HARD_STATE,
  RaftNode,
  type Entry,
  type HardState,
  type Message,
  type RaftConfig,
  type RaftConstructor,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
} from '../../lib/raft/index.js';
import type { EventQueue } from './event-queue.js';
import { KvMachine } from './kv-machine.js';
import type { Prng } from './prng.js';

/** What survives a crash. */
interface Durable {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export interface NodeHooks {
  send(m: Message): void;
  applied(node: SimNode, entry: Entry): void;
  readReady(node: SimNode, rs: ReadState): void;
  softState(node: SimNode, s: SoftState): void;
}

export interface SimNodeOptions {
  readonly config: Omit<RaftConfig, 'random'>;
  readonly core?: RaftConstructor;
  /** Real-time ms per tick of this node: its clock skew. */
  readonly tickMs: number;
  readonly snapshotEvery: number;
}

/**
 * One simulated member: the real core plus a disk model. A Ready is persisted after a random disk delay; a crash in
 * that window keeps nothing, or a random prefix of its entries (a torn write), and its messages are never sent.
 */
export class SimNode {
  raft: RaftNode | null = null;
  kv = new KvMachine();
  private durable: Durable = { hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] };
  private persisting: Ready | null = null;
  private incarnation = 0;
  private waitingReads: ReadState[] = [];
  /** What `kv` reflects: the application's own record, never the core's. */
  appliedIndex = 0;

  constructor(
    readonly id: string,
    private readonly opts: SimNodeOptions,
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly hooks: NodeHooks,
  ) {}

  /** Last index and term of what is surely on disk: what this node would vote with after a crash. */
  durableLast(): { index: number; term: number } {
    const d = this.durable;
    const last = d.entries[d.entries.length - 1];
    if (last) return { index: last.index, term: last.term };
    return { index: d.snapshot?.meta.index ?? 0, term: d.snapshot?.meta.term ?? 0 };
  }

  get alive(): boolean {
    return this.raft !== null;
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
      this.pump();
      this.queue.schedule(this.opts.tickMs, tick);
    };
    this.queue.schedule(this.rng.range(0, this.opts.tickMs), tick);
    this.pump();
  }

  /**
   * Power cut. A Ready being written keeps nothing or a torn prefix of its entries; with `afterSync` it was fully
   * written and only its messages are lost (a crash between fsync and send).
   */
  crash(afterSync = false): void {
    if (!this.raft) return;
    const rd = this.persisting;
    if (rd && afterSync) this.persist(rd, rd.entries.length);
    else if (rd && this.rng.chance(0.5)) this.persist(rd, this.rng.int(0, rd.entries.length + 1));
    this.raft = null;
    this.persisting = null;
    this.incarnation++;
  }

  /** Runs `fn` against the live core, then hands any new work to the disk. */
  input(fn: (r: RaftNode) => void): void {
    if (!this.raft) return;
    fn(this.raft);
    this.pump();
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
    for (const m of rd.messages) this.hooks.send(m);
    if (rd.snapshot) {
      this.kv = KvMachine.restore(rd.snapshot.data);
      this.appliedIndex = rd.snapshot.meta.index;
    }
    for (const e of rd.committedEntries) {
      this.hooks.applied(this, e);
      this.appliedIndex = e.index;
    }
    this.waitingReads.push(...rd.readStates);
    this.persisting = null;
    r.advance(rd);
    this.serveReads();
    this.maybeSnapshot();
    this.pump();
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
    const applied = this.appliedIndex;
    const still: ReadState[] = [];
    for (const rs of this.waitingReads) {
      if (rs.index <= applied) this.hooks.readReady(this, rs);
      else still.push(rs);
    }
    this.waitingReads = still;
  }

  private maybeSnapshot(): void {
    const core = this.raft!.core;
    const applied = this.appliedIndex;
    if (applied - core.log.snapshotIndex() < this.opts.snapshotEvery) return;
    const snap: Snapshot = {
      meta: { index: applied, term: core.log.term(applied)!, voters: core.voters },
      data: this.kv.snapshot(),
    };
    this.durable.snapshot = snap;
    this.durable.entries = this.durable.entries.filter((e) => e.index > applied);
    this.raft!.compact(snap);
  }
}
