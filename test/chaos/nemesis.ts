/**
 * The chaos nemesis: on a schedule drawn from its own seeded PRNG it kills nodes with SIGKILL and restarts them on
 * their dataDir, pauses them (SIGSTOP … SIGCONT), transfers leadership, and restarts nodes gracefully with another
 * clock rate (CATGA_TEST_CLOCK_RATE). With a NetnsLab it also cuts the network between the node processes: isolates
 * a node, drops one direction of a link, or blackholes a node or a link. At most `maxFaulty` nodes (a minority) are
 * down, paused, restarting, isolated or blackholed at once, so the cluster can keep making progress (a cut link
 * takes no node out and is not counted). Half the faults aim at the current leader.
 *
 * Same seed → same sequence of decisions (kinds, gaps, durations, rates, whom to aim at); which node is the leader
 * when a fault aims at it, and so how the run unfolds, depends on real process timing.
 */
import type { Cut, NetnsLab } from '../support/netns.js';
import type { ProbeResult } from '../support/node-protocol.js';
import type { Prng } from '../support/prng.js';
import { sleep, type NodeProcess, type ProcessCluster } from '../support/process-cluster.js';
import { errorName } from './history.js';

export const FAULT_KINDS = ['kill', 'pause', 'transfer', 'skew'] as const;
/** Injected only when the nodes run in network namespaces. */
export const PARTITION_KINDS = ['isolate', 'one-way', 'blackhole'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | (typeof PARTITION_KINDS)[number];

/** Clock rates stay within the core's drift bound (maxClockDrift 0.1). */
export const CLOCK_RATES: readonly [number, number] = [0.95, 1.05];

export interface Fault {
  readonly kind: FaultKind;
  /** The node hit; for a transfer, the node asked to take over; for a cut link, its first end (one-way: the sender). */
  readonly node: string;
  /** A cut link's other end (one-way: the node that no longer hears `node`). */
  readonly peer?: string;
  readonly wasLeader: boolean;
  /** When it was injected, on the `now` clock of the options. */
  readonly at: number;
  /** kill: time down; pause: time stopped; partitions: time cut. */
  readonly durationMs?: number;
  /** skew: the node's new clock rate. */
  readonly rate?: number;
  /** Set when the fault could not be injected (e.g. a transfer with no leader known). */
  readonly error?: string;
}

export interface NemesisOptions {
  readonly cluster: ProcessCluster;
  readonly rng: Prng;
  readonly maxFaulty: number;
  /** Timestamps for the faults (the history's clock, so both line up). */
  readonly now: () => number;
  /** True once no new fault should start; running ones then heal at once. */
  readonly done: () => boolean;
  readonly log?: (message: string) => void;
  /** The nodes run in this lab's namespaces: partition faults join the schedule. */
  readonly netns?: NetnsLab;
}

/** One fault's decisions, drawn before the kind is known so the stream does not depend on it. */
interface Draw {
  readonly gapMs: number;
  readonly kindRoll: number;
  readonly atLeader: boolean;
  readonly pick: number;
  readonly durationMs: number;
  readonly rate: number;
  /** Drawn only with partitions: a link's second end, and whether a blackhole hits a link rather than a node. */
  readonly second?: number;
  readonly asLink?: boolean;
}

const START_TIMEOUT_MS = 20_000;
const GRACEFUL_STOP_MS = 8_000;
/** Looks for a leader to transfer from this many times, 100 ms apart. */
const TRANSFER_TRIES = 30;

export class Nemesis {
  readonly faults: Fault[] = [];
  private readonly found: string[] = [];
  private readonly active = new Set<Promise<void>>();
  /** Nodes down, paused or restarting. */
  private readonly faulty = new Set<string>();
  /** Node faults started and not yet healed (counted from launch, before a target is chosen). */
  private busy = 0;

  private readonly kinds: readonly FaultKind[];

  constructor(private readonly o: NemesisOptions) {
    this.kinds = o.netns ? [...FAULT_KINDS, ...PARTITION_KINDS] : FAULT_KINDS;
  }

  /** Injects faults until done(), then waits for every fault to heal: all nodes run, none is paused or cut off. */
  async run(): Promise<void> {
    const { rng } = this.o;
    const partitions = this.o.netns !== undefined;
    // The first faults are one of each kind, in a seeded order, so every run has them all.
    const first: FaultKind[] = this.kinds.slice();
    for (let i = first.length - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [first[i], first[j]] = [first[j]!, first[i]!];
    }
    for (let i = 0; !this.o.done(); i++) {
      const d: Draw = {
        gapMs: rng.range(400, 2000),
        kindRoll: rng.next(),
        atLeader: rng.chance(0.5),
        pick: rng.next(),
        durationMs: rng.range(300, 3000),
        rate: rng.range(CLOCK_RATES[0], CLOCK_RATES[1]),
        // After the others: without partitions the stream is drawn exactly as before they existed.
        ...(partitions ? { second: rng.next(), asLink: rng.chance(0.5) } : {}),
      };
      const kind = first[i] ?? (partitions ? partitionRunKind(d.kindRoll) : processRunKind(d.kindRoll));
      await this.sleep(d.gapMs);
      const holdsNode = kind !== 'transfer' && kind !== 'one-way' && !(kind === 'blackhole' && d.asLink);
      while (holdsNode && this.busy >= this.o.maxFaulty && !this.o.done()) await Promise.race(this.active);
      if (this.o.done()) break;
      if (holdsNode) this.busy++;
      const task = this.inject(kind, d)
        .catch((e: Error) => void this.problem(`nemesis ${kind}: ${e.message}`))
        .finally(() => {
          if (holdsNode) this.busy--;
          this.active.delete(task);
        });
      this.active.add(task);
    }
    await Promise.all(this.active);
  }

  /** Injected faults by kind; the partition kinds only when partitions are on. */
  counts(): Partial<Record<FaultKind, number>> {
    const c: Partial<Record<FaultKind, number>> = {};
    for (const k of this.kinds) c[k] = 0;
    for (const f of this.faults) if (!f.error) c[f.kind] = (c[f.kind] ?? 0) + 1;
    return c;
  }

  private async inject(kind: FaultKind, d: Draw): Promise<void> {
    const live = () => this.o.cluster.nodes.filter((n) => n.running && !this.faulty.has(n.id));
    if (kind === 'transfer') return this.transfer(live, d.pick);
    const lab = this.o.netns;
    if (lab && (kind === 'one-way' || (kind === 'blackhole' && d.asLink))) return this.cutLink(lab, kind, d);
    if (lab && (kind === 'isolate' || kind === 'blackhole')) return this.cutNode(lab, kind, d, live);
    const leader = await this.leader(live());
    // Chosen after the await, in the same turn as it is marked faulty.
    const eligible = live();
    const target = d.atLeader && leader && eligible.includes(leader) ? leader : eligible[Math.floor(d.pick * eligible.length)];
    if (!target) return;
    const wasLeader = target === leader;
    this.faulty.add(target.id);
    try {
      if (kind === 'kill') {
        await target.signal('SIGKILL');
        this.record({ kind, node: target.id, wasLeader, at: this.o.now(), durationMs: Math.round(d.durationMs) });
        await this.sleep(d.durationMs);
        await this.restart(target);
      } else if (kind === 'pause') {
        target.pause();
        this.record({ kind, node: target.id, wasLeader, at: this.o.now(), durationMs: Math.round(d.durationMs) });
        await this.sleep(d.durationMs);
        target.resume();
      } else {
        const rate = Math.round(d.rate * 10_000) / 10_000;
        target.setEnv({ CATGA_TEST_CLOCK_RATE: String(rate) });
        this.record({ kind, node: target.id, wasLeader, at: this.o.now(), rate });
        await this.stopGracefully(target);
        await this.restart(target);
      }
    } finally {
      this.faulty.delete(target.id);
    }
  }

  /**
   * Cuts one node off from all others (isolate: refused and reset; blackhole: silently lost) — the leader half the
   * time, else a follower — and heals it after the drawn duration. The node counts as faulty meanwhile.
   */
  private async cutNode(lab: NetnsLab, kind: 'isolate' | 'blackhole', d: Draw, live: () => NodeProcess[]): Promise<void> {
    const leader = await this.leader(live());
    const eligible = live();
    const followers = eligible.filter((n) => n !== leader);
    const target = d.atLeader && leader && eligible.includes(leader) ? leader : followers[Math.floor(d.pick * followers.length)];
    if (!target) return;
    this.faulty.add(target.id);
    try {
      const cut = kind === 'isolate' ? await lab.isolate(target.id) : await lab.blackhole(target.id);
      await this.holdCut(cut, { kind, node: target.id, wasLeader: target === leader, at: this.o.now(), durationMs: Math.round(d.durationMs) }, d.durationMs);
    } finally {
      this.faulty.delete(target.id);
    }
  }

  /** Cuts a random link, one direction (one-way) or both (blackhole), whatever the state of its ends. */
  private async cutLink(lab: NetnsLab, kind: 'one-way' | 'blackhole', d: Draw): Promise<void> {
    const ids = this.o.cluster.nodes.map((n) => n.id);
    const a = ids[Math.floor(d.pick * ids.length)]!;
    const others = ids.filter((id) => id !== a);
    const b = others[Math.floor((d.second ?? 0) * others.length)]!;
    const cut = kind === 'one-way' ? await lab.cutOneWay(a, b) : await lab.blackholeLink(a, b);
    await this.holdCut(cut, { kind, node: a, peer: b, wasLeader: false, at: this.o.now(), durationMs: Math.round(d.durationMs) }, d.durationMs);
  }

  private async holdCut(cut: Cut, fault: Fault, durationMs: number): Promise<void> {
    try {
      this.record(fault);
      await this.sleep(durationMs);
    } finally {
      await cut.heal();
    }
  }

  /** Asks the leader to hand over to another live node; waits a little for one when an election is under way. */
  private async transfer(live: () => NodeProcess[], pick: number): Promise<void> {
    let leader: NodeProcess | null = null;
    let others: NodeProcess[] = [];
    for (let i = 0; i < TRANSFER_TRIES && !this.o.done(); i++) {
      if (i > 0) await sleep(100);
      leader = await this.leader(live());
      others = live().filter((n) => n !== leader);
      if (leader && others.length > 0) break;
    }
    const to = others[Math.floor(pick * others.length)];
    if (!leader || !to) {
      this.record({ kind: 'transfer', node: to?.id ?? '-', wasLeader: false, at: this.o.now(), error: 'no leader with a live follower' });
      return;
    }
    const at = this.o.now();
    try {
      await leader.request({ op: 'transfer', to: to.id }, 10_000);
      this.record({ kind: 'transfer', node: to.id, wasLeader: false, at });
    } catch (e) {
      this.record({ kind: 'transfer', node: to.id, wasLeader: false, at, error: `${errorName(e)}: ${(e as Error).message}` });
    }
  }

  /** The node among `nodes` that leads with a lease right now, if one answers quickly. */
  private async leader(nodes: readonly NodeProcess[]): Promise<NodeProcess | null> {
    const probes = await Promise.all(nodes.map((n) => n.request<ProbeResult>({ op: 'probe' }, 1000).catch(() => null)));
    const i = probes.findIndex((p) => p?.hasLease);
    return i >= 0 ? nodes[i]! : null;
  }

  /** SIGTERM (the node stops, handing leadership over); SIGKILL if it has not exited in time. */
  private async stopGracefully(node: NodeProcess): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), GRACEFUL_STOP_MS)));
    const outcome = await Promise.race([node.signal('SIGTERM').then(() => 'exited' as const), late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.problem(`${node.id} did not stop within ${GRACEFUL_STOP_MS} ms of SIGTERM`);
      await node.signal('SIGKILL');
    }
  }

  /** Starts the node again on its dataDir; a node that will not start is a finding, not something to retry past. */
  private async restart(node: NodeProcess): Promise<void> {
    try {
      await node.start(START_TIMEOUT_MS);
      this.o.log?.(`${node.id} restarted`);
    } catch (e) {
      this.problem(`${node.id} did not restart: ${(e as Error).message.slice(-2000)}`);
    }
  }

  /** Things that must not happen: a node that would not restart on its dataDir, or stop when asked. */
  get problems(): readonly string[] {
    return this.found;
  }

  private problem(message: string): void {
    this.found.push(message);
    this.o.log?.(`PROBLEM: ${message}`);
  }

  private record(f: Fault): void {
    this.faults.push(f);
    const extra = f.durationMs !== undefined ? ` for ${f.durationMs} ms` : f.rate !== undefined ? ` to clock rate ${f.rate}` : '';
    const link = f.peer === undefined ? '' : `${f.kind === 'one-way' ? '->' : '<->'}${f.peer}`;
    this.o.log?.(`${f.kind} ${f.node}${link}${f.wasLeader ? ' (leader)' : ''}${extra}${f.error ? `: failed (${f.error})` : ''}`);
  }

  /** Sleeps `ms`, waking early once done() so that faults heal promptly at the end. */
  private async sleep(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!this.o.done() && performance.now() < until) await sleep(Math.min(50, until - performance.now()));
  }
}

/** Without partitions: kill 30%, pause 30%, transfer 20%, skew 20%. */
function processRunKind(roll: number): FaultKind {
  return roll < 0.3 ? 'kill' : roll < 0.6 ? 'pause' : roll < 0.8 ? 'transfer' : 'skew';
}

/** With partitions: kill 20%, pause 20%, transfer 15%, skew 10%, isolate 12%, one-way 12%, blackhole 11%. */
function partitionRunKind(roll: number): FaultKind {
  const weights: readonly [FaultKind, number][] = [
    ['kill', 0.2],
    ['pause', 0.2],
    ['transfer', 0.15],
    ['skew', 0.1],
    ['isolate', 0.12],
    ['one-way', 0.12],
  ];
  let acc = 0;
  for (const [kind, w] of weights) if (roll < (acc += w)) return kind;
  return 'blackhole';
}
