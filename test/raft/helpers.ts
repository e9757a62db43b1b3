/**
 * A tiny deterministic harness for the Raft core's unit tests.
 *
 * - `node()` / `drain()` / `send()` drive one RaftNode by hand: persistence is instant and its messages are returned.
 * - `Cluster` runs N RaftNodes over a `Network` that queues messages and delivers them on demand, with drop rules per
 *   message. Each node keeps a durable copy of what its Readies asked to persist, so it can be restarted.
 *
 * Nothing here is random: every node's `random()` is a constant, so election timeouts are fixed per node.
 */
import {
  EMPTY_HARD_STATE,
  message,
  MessageType,
  RaftNode,
  type Entry,
  type HardState,
  type InitialState,
  type Message,
  type NodeId,
  type Raft,
  type RaftConfig,
  type RaftConstructor,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
} from '../../lib/raft/index.js';

export const ELECTION = 10;
export const HEARTBEAT = 1;

const encoder = new TextEncoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Entries with the given terms, one per index from `from` on. */
export function entries(terms: readonly number[], from = 1): Entry[] {
  return terms.map((term, i) => ({ term, index: from + i, data: bytes(`${from + i}@${term}`) }));
}

/** A node's state as recovered from disk: a log with these terms (index 1 on) and the given hard state. */
export function stateWith(terms: readonly number[], hard: Partial<HardState> = {}): InitialState {
  const last = terms[terms.length - 1] ?? 0;
  return { hardState: { term: last, vote: '', commit: 0, ...hard }, snapshot: null, entries: entries(terms) };
}

/** The terms of the entries a core holds, from its first index on. */
export function termsOf(r: Raft): number[] {
  const out: number[] = [];
  for (let i = r.log.firstIndex(); i <= r.log.lastIndex(); i++) out.push(r.log.term(i)!);
  return out;
}

export function config(id: NodeId, voters: readonly NodeId[], over: Partial<RaftConfig> = {}): RaftConfig {
  // random() = 0.5: an election timeout of 1.5 T, so nobody campaigns in the first T ticks unless a test asks.
  // A configuration given in full replaces the voter shorthand.
  return { id, ...(over.membership ? {} : { voters }), electionTick: ELECTION, heartbeatTick: HEARTBEAT, random: () => 0.5, ...over };
}

export function msg(type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<Message> = {}): Message {
  return message({ type, from, to, term, ...fields });
}

// ---- one node by hand -------------------------------------------------------------------------------------------

export interface Drained {
  readonly readies: Ready[];
  readonly messages: Message[];
  readonly committed: Entry[];
  readonly readStates: ReadState[];
}

/** A stand-alone node of a cluster whose other members are played by the test. */
export function node(
  id: NodeId = 'a',
  voters: readonly NodeId[] = ['a', 'b', 'c'],
  opts: { config?: Partial<RaftConfig>; state?: InitialState } = {},
): RaftNode {
  return new RaftNode(config(id, voters, opts.config), opts.state);
}

/** Handles every Ready (instant persistence) and returns what came out. */
export function drain(n: RaftNode): Drained {
  const out: Drained = { readies: [], messages: [], committed: [], readStates: [] };
  while (n.hasReady()) {
    const rd = n.ready();
    out.readies.push(rd);
    out.messages.push(...rd.messages);
    out.committed.push(...rd.committedEntries);
    out.readStates.push(...rd.readStates);
    n.advance(rd);
  }
  return out;
}

/** Steps one message into `n` and returns the messages it answered with. */
export function send(n: RaftNode, m: Message): Message[] {
  n.step(m);
  return drain(n).messages;
}

/** Whether `out` grants a vote or pre-vote. */
export function granted(out: readonly Message[]): boolean {
  return out.some((m) => (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp) && !m.reject);
}

/** Ticks `n` `count` times, handling Readies in between; returns every message sent. */
export function tickN(n: RaftNode, count: number): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    n.tick();
    out.push(...drain(n).messages);
  }
  return out;
}

// ---- network ------------------------------------------------------------------------------------------------------

/** Returns true for a message the network must drop. */
export type DropRule = (m: Message) => boolean;

/** Queues messages and delivers them on demand; drop rules are checked at delivery time. */
export class Network {
  /** Every message a node sent, in order, dropped or not. */
  readonly trace: Message[] = [];
  readonly dropped: Message[] = [];
  private queue: Message[] = [];
  private readonly rules = new Set<DropRule>();

  send(ms: readonly Message[]): void {
    for (const m of ms) {
      this.trace.push(m);
      this.queue.push(m);
    }
  }

  drop(rule: DropRule): DropRule {
    this.rules.add(rule);
    return rule;
  }

  allow(rule: DropRule): void {
    this.rules.delete(rule);
  }

  /** Drops everything to and from `id`. */
  isolate(id: NodeId): DropRule {
    return this.drop((m) => m.from === id || m.to === id);
  }

  /** Drops everything between `a` and `b`, both ways. */
  cut(a: NodeId, b: NodeId): DropRule {
    return this.drop((m) => (m.from === a && m.to === b) || (m.from === b && m.to === a));
  }

  heal(): void {
    this.rules.clear();
  }

  pending(): readonly Message[] {
    return this.queue;
  }

  /** Removes and returns the queued messages the rules let through. */
  take(): Message[] {
    const out: Message[] = [];
    for (const m of this.queue) {
      if ([...this.rules].some((r) => r(m))) this.dropped.push(m);
      else out.push(m);
    }
    this.queue = [];
    return out;
  }

  /** Messages sent so far that match `f`. */
  sent(f: { type?: MessageType; from?: NodeId; to?: NodeId }): Message[] {
    return this.trace.filter((m) => (f.type === undefined || m.type === f.type) && (f.from === undefined || m.from === f.from) && (f.to === undefined || m.to === f.to));
  }
}

// ---- cluster ------------------------------------------------------------------------------------------------------

/** What a node's Readies asked to persist. */
export interface Disk {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export interface ClusterOptions {
  /** For every node. */
  readonly config?: Partial<RaftConfig>;
  readonly configs?: Readonly<Record<NodeId, Partial<RaftConfig>>>;
  readonly states?: Readonly<Record<NodeId, InitialState>>;
  /** A different core (a deliberately broken rule, to show what a test would catch). */
  readonly core?: RaftConstructor;
}

export class Cluster {
  readonly net = new Network();
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly disks = new Map<NodeId, Disk>();
  /** Committed entries handed to each node's application, in order. */
  readonly applied = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Every soft state change each node reported. */
  readonly softStates = new Map<NodeId, SoftState[]>();
  private readonly configs = new Map<NodeId, RaftConfig>();
  private readonly core: RaftConstructor | undefined;

  constructor(
    readonly ids: readonly NodeId[],
    opts: ClusterOptions = {},
  ) {
    this.core = opts.core;
    ids.forEach((id, i) => {
      // Distinct fixed timeouts, 1.5 T for the first node, then one tick more per node: no split votes, no surprises.
      const random = () => Math.min(0.5 + 0.1 * i, 0.99);
      this.configs.set(id, config(id, ids, { random, ...opts.config, ...opts.configs?.[id] }));
      const s = opts.states?.[id];
      this.disks.set(id, { hardState: s?.hardState ?? EMPTY_HARD_STATE, snapshot: s?.snapshot ?? null, entries: [...(s?.entries ?? [])] });
      this.applied.set(id, []);
      this.readStates.set(id, []);
      this.softStates.set(id, []);
      this.start(id);
    });
  }

  node(id: NodeId): RaftNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`${id} is stopped`);
    return n;
  }

  raft(id: NodeId): Raft {
    return this.node(id).core;
  }

  running(): NodeId[] {
    return this.ids.filter((id) => this.nodes.has(id));
  }

  /** The leader with the highest term among running nodes. */
  leader(): NodeId | undefined {
    let best: Raft | undefined;
    for (const n of this.nodes.values()) {
      if (n.core.role === 'leader' && (!best || n.core.term > best.term)) best = n.core;
    }
    return best?.id;
  }

  /** Persists `rd`, hands its messages to the network and records what it applies; the caller advances. */
  process(id: NodeId, rd: Ready): void {
    const disk = this.disks.get(id)!;
    if (rd.snapshot) {
      disk.snapshot = rd.snapshot;
      disk.entries = [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      disk.entries = disk.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState) disk.hardState = rd.hardState;
    this.net.send(rd.messages);
    this.applied.get(id)!.push(...rd.committedEntries);
    this.readStates.get(id)!.push(...rd.readStates);
    if (rd.softState) this.softStates.get(id)!.push(rd.softState);
  }

  /** Handles every Ready of one node (or of all); true when there was any. */
  flush(id?: NodeId): boolean {
    let any = false;
    for (const i of id === undefined ? this.running() : [id]) {
      const n = this.node(i);
      while (n.hasReady()) {
        const rd = n.ready();
        this.process(i, rd);
        n.advance(rd);
        any = true;
      }
    }
    return any;
  }

  /** One network hop: flush every node, then deliver what was queued. Returns the number of messages delivered. */
  hop(): number {
    this.flush();
    const batch = this.net.take();
    for (const m of batch) this.nodes.get(m.to)?.step(m);
    return batch.length;
  }

  /** Hops until no node has anything to do and nothing is in flight. */
  settle(): void {
    // A hop that delivers nothing leaves every node flushed and the queue empty.
    for (let i = 0; i < 10_000; i++) if (this.hop() === 0) return;
    throw new Error('cluster did not settle');
  }

  /** Steps the given messages straight into their targets (no drop rules), then settles. */
  deliver(ms: readonly Message[]): void {
    for (const m of ms) this.nodes.get(m.to)?.step(m);
    this.settle();
  }

  /** `count` rounds of: tick each of `ids`, then settle. */
  tick(count = 1, ids: readonly NodeId[] = this.running()): void {
    for (let i = 0; i < count; i++) {
      for (const id of ids) this.node(id).tick();
      this.settle();
    }
  }

  /** Lets every node leave its boot quiet period, then has `id` campaign and win. */
  elect(id: NodeId): void {
    const ticks = Math.max(...this.running().map((i) => this.configs.get(i)!.electionTick));
    const start = this.raft(id).now;
    if (start < ticks) this.tick(ticks - start);
    this.node(id).campaign();
    this.settle();
    if (this.leader() !== id) throw new Error(`${id} did not win the election (leader: ${this.leader() ?? 'none'})`);
  }

  propose(id: NodeId, ...data: string[]): { term: number; index: number } | null {
    return this.node(id).propose(data.map(bytes));
  }

  stop(id: NodeId): void {
    this.nodes.delete(id);
  }

  /** Starts (again) from what the node persisted. */
  start(id: NodeId): RaftNode {
    const d = this.disks.get(id)!;
    const n = new RaftNode(this.configs.get(id)!, { hardState: d.hardState, snapshot: d.snapshot, entries: [...d.entries] }, this.core);
    this.nodes.set(id, n);
    return n;
  }

  /** Snapshots `id`'s state at `index` (default: all it applied) as `data`, compacting its log in memory and on disk. */
  compact(id: NodeId, data: Uint8Array, index = this.raft(id).log.applied): Snapshot {
    const r = this.raft(id);
    const snap: Snapshot = { meta: { index, term: r.log.term(index)!, membership: r.membershipAt(index) }, data };
    r.compact(snap);
    const disk = this.disks.get(id)!;
    disk.snapshot = snap;
    disk.entries = disk.entries.filter((e) => e.index > index);
    return snap;
  }
}
