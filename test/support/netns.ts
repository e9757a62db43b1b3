/**
 * Real network cuts between node processes, as Jepsen makes them: one Linux network namespace per node, each joined
 * by a veth pair to a bridge in the root namespace, with a private address in one /24. Faults are iptables rules
 * inside the namespaces (filter table, in chains of our own that INPUT and OUTPUT jump to); the root namespace's
 * rules are never touched. The bridge has no address, so the root namespace has no route into a lab and two labs
 * never reach each other. Needs root, iproute2 and iptables.
 *
 * Every name created (namespaces, bridge, veth ends) starts with `<root><pid base 36>-<seq base 36>`, so runs never
 * collide and `cleanupStale` can tell a crashed run's leftovers (its pid is gone) from a live run's.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { alive, freeSubnet, linkNames, namespaceNames, probe, run, runAsync, tryRun } from './netns-host.js';

/** Chains of our own in each namespace: flushing them removes exactly the rules this file added. */
const CHAIN_IN = 'CATGA-IN';
const CHAIN_OUT = 'CATGA-OUT';
const DEFAULT_ROOT = 'cg';
const IFNAME_MAX = 15;

/** One fault's rules; `heal()` deletes exactly them (a no-op once healed, or after the lab's heal()). */
export interface Cut {
  readonly description: string;
  heal(): Promise<void>;
}

interface Rule {
  /** Index of the node whose namespace holds the rule. */
  readonly at: number;
  readonly chain: typeof CHAIN_IN | typeof CHAIN_OUT;
  readonly spec: string;
}

export class NetnsLab {
  private static seq = 0;
  private static unavailableReason: string | null | undefined;
  readonly prefix: string;
  readonly subnet: string;
  private readonly ids: readonly string[];
  private readonly namespaces: string[] = [];
  private readonly hostEnds: string[] = [];
  private bridge: string | null = null;
  private readonly active = new Set<Rule[]>();
  /** iptables changes run one at a time, so a cut's delete never overtakes its add. */
  private queue: Promise<void> = Promise.resolve();
  private destroyed = false;
  /** Addresses moved by moveAddress(), by node index. */
  private readonly moved = new Map<number, number>();
  private hosts: Readonly<Record<string, string>> | null = null;

  /** Creates the bridge, one namespace per id and the veth pairs; on a failure removes what it made and throws. */
  constructor(ids: readonly string[], prefixRoot = DEFAULT_ROOT) {
    checkRoot(prefixRoot);
    if (ids.length < 2 || ids.length > 36 || new Set(ids).size !== ids.length) throw new RangeError('ids: 2 to 36 distinct node ids');
    for (const id of ids) if (!/^[A-Za-z0-9_.-]{1,32}$/.test(id)) throw new RangeError(`node id ${JSON.stringify(id)} cannot name a namespace`);
    this.ids = ids;
    this.prefix = `${prefixRoot}${process.pid.toString(36)}-${(NetnsLab.seq++).toString(36)}`;
    if (this.ifname('h', ids.length - 1).length > IFNAME_MAX) throw new RangeError(`prefix ${this.prefix} leaves no room in ${IFNAME_MAX}-character interface names`);
    this.subnet = freeSubnet();
    track(this);
    try {
      this.build();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Why namespaces cannot be used here, or null when they can (probed once: a namespace made and removed). */
  static unavailable(): string | null {
    if (NetnsLab.unavailableReason === undefined) NetnsLab.unavailableReason = probe(`${DEFAULT_ROOT}${process.pid.toString(36)}-probe`);
    return NetnsLab.unavailableReason;
  }

  static available(): boolean {
    return NetnsLab.unavailable() === null;
  }

  /** Removes namespaces and links named by `prefixRoot` whose creating process no longer exists. */
  static cleanupStale(prefixRoot = DEFAULT_ROOT): string[] {
    checkRoot(prefixRoot);
    const stale = (name: string) => {
      const m = new RegExp(`^${prefixRoot}([0-9a-z]+)-`).exec(name);
      return m !== null && !alive(parseInt(m[1]!, 36));
    };
    const removed: string[] = [];
    // Links first: a namespace is freed asynchronously, its veth end with it; deleting the root end is immediate.
    for (const link of linkNames().filter(stale)) if (tryRun('ip', ['link', 'del', link])) removed.push(link);
    for (const ns of namespaceNames().filter(stale)) if (tryRun('ip', ['netns', 'del', ns])) removed.push(ns);
    return removed;
  }

  /** The node's private address. */
  address(id: string): string {
    const i = this.index(id);
    return `${this.subnet}.${this.moved.get(i) ?? i + 1}`;
  }

  /**
   * Gives every namespace a hosts file naming each node by `names[id]` (e.g. StatefulSet pod names): `ip netns exec`
   * bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for the processes it starts. Rewritten in place by
   * moveAddress(), so running processes see the change at their next lookup.
   */
  writeHosts(names: Readonly<Record<string, string>>): void {
    this.hosts = names;
    const text = ['127.0.0.1 localhost', ...Object.entries(names).map(([id, name]) => `${this.address(id)} ${name}`), ''].join('\n');
    for (const ns of this.namespaces) {
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/hosts`, text); // truncates in place: the bind mounts keep the same inode
    }
  }

  /** The node gets a new address in the subnet (a pod rescheduled with a new IP); the hosts files follow. */
  moveAddress(id: string): string {
    const i = this.index(id);
    const from = this.address(id);
    this.moved.set(i, 100 + i);
    const inner = this.ifname('n', i);
    run('ip', ['-n', this.nsName(i), 'addr', 'del', `${from}/24`, 'dev', inner]);
    run('ip', ['-n', this.nsName(i), 'addr', 'add', `${this.address(id)}/24`, 'dev', inner]);
    if (this.hosts) this.writeHosts(this.hosts);
    return this.address(id);
  }

  namespace(id: string): string {
    return this.nsName(this.index(id));
  }

  /** The command line that runs `command args` inside the node's namespace (`ip netns exec` execs it: same pid). */
  wrap(id: string, command: string, args: readonly string[]): { command: string; args: string[] } {
    return { command: 'ip', args: ['netns', 'exec', this.namespace(id), command, ...args] };
  }

  /** No packet between the node and any other; new connections are refused at once, established ones reset. */
  isolate(id: string): Promise<Cut> {
    const i = this.index(id);
    return this.cut(`isolate ${id}`, this.others(i).flatMap((j) => [...this.reject(i, j), ...this.reject(j, i)]));
  }

  /** Every packet between the node and the others is silently lost: connections stay up, nothing arrives. */
  blackhole(id: string): Promise<Cut> {
    const i = this.index(id);
    return this.cut(`blackhole ${id}`, this.others(i).flatMap((j) => [this.drop(i, j), this.drop(j, i)]));
  }

  /** Packets between a and b are lost both ways; both still reach everyone else. */
  blackholeLink(a: string, b: string): Promise<Cut> {
    const [i, j] = this.pair(a, b);
    return this.cut(`blackhole ${a}<->${b}`, [this.drop(i, j), this.drop(j, i)]);
  }

  /** Packets from `from` to `to` are lost; `to` → `from` still flows. */
  cutOneWay(from: string, to: string): Promise<Cut> {
    const [i, j] = this.pair(from, to);
    return this.cut(`one-way ${from}->${to}`, [this.drop(i, j)]);
  }

  /** Removes every rule of every cut: flushes our chains in each namespace (nothing to do once destroyed). */
  heal(): Promise<void> {
    return this.serial(async () => {
      this.active.clear();
      if (this.destroyed) return;
      await Promise.all(this.namespaces.map((ns) => restore(ns, [`-F ${CHAIN_IN}`, `-F ${CHAIN_OUT}`])));
    });
  }

  /** Removes everything this lab created; safe to call twice, and from an exit handler (synchronous). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    untrack(this);
    const links = new Set(linkNames());
    const namespaces = new Set(namespaceNames());
    const failed: string[] = [];
    for (const h of this.hostEnds) if (links.has(h) && !tryRun('ip', ['link', 'del', h])) failed.push(h);
    if (this.bridge && links.has(this.bridge) && !tryRun('ip', ['link', 'del', this.bridge])) failed.push(this.bridge);
    for (const ns of this.namespaces) if (namespaces.has(ns) && !tryRun('ip', ['netns', 'del', ns])) failed.push(ns);
    if (this.hosts) for (const ns of this.namespaces) rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    if (failed.length > 0) throw new Error(`netns lab ${this.prefix}: could not remove ${failed.join(', ')}`);
  }

  private build(): void {
    const bridge = `${this.prefix}b`;
    run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    this.bridge = bridge;
    run('ip', ['link', 'set', bridge, 'up']);
    this.ids.forEach((_, i) => {
      const ns = this.nsName(i);
      const host = this.ifname('h', i);
      const inner = this.ifname('n', i);
      run('ip', ['netns', 'add', ns]);
      this.namespaces.push(ns);
      run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
      this.hostEnds.push(host);
      run('ip', ['link', 'set', host, 'master', bridge, 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', ns, 'addr', 'add', `${this.subnet}.${i + 1}/24`, 'dev', inner]);
      run('ip', ['-n', ns, 'link', 'set', inner, 'up']);
      run('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], restoreInput([`:${CHAIN_IN} - [0:0]`, `:${CHAIN_OUT} - [0:0]`, `-A INPUT -j ${CHAIN_IN}`, `-A OUTPUT -j ${CHAIN_OUT}`]));
    });
  }

  /** Packets from i to j are lost on arrival at j: i's stack sees nothing wrong, as when a network drops them. */
  private drop(i: number, j: number): Rule {
    return { at: j, chain: CHAIN_IN, spec: `-i ${this.ifname('n', j)} -s ${this.subnet}.${i + 1}/32 -j DROP` };
  }

  /**
   * i's packets to j are refused in i's own OUTPUT (TCP with a reset, so connect() fails with ECONNREFUSED and an
   * established socket with ECONNRESET as soon as it sends), and anything already on the wire is lost at j. The
   * reset comes back through lo, which the INPUT rules do not match.
   */
  private reject(i: number, j: number): Rule[] {
    const out = `-o ${this.ifname('n', i)} -d ${this.subnet}.${j + 1}/32`;
    return [
      { at: i, chain: CHAIN_OUT, spec: `${out} -p tcp -j REJECT --reject-with tcp-reset` },
      { at: i, chain: CHAIN_OUT, spec: `${out} -j REJECT --reject-with icmp-port-unreachable` },
      this.drop(i, j),
    ];
  }

  private cut(description: string, rules: Rule[]): Promise<Cut> {
    return this.serial(async () => {
      await this.apply(rules, '-A');
      this.active.add(rules);
      return {
        description,
        heal: () =>
          this.serial(async () => {
            if (!this.active.delete(rules)) return;
            await this.apply(rules, '-D');
          }),
      };
    });
  }

  /** One iptables-restore per namespace touched: each namespace's change is a single transaction. */
  private async apply(rules: readonly Rule[], op: '-A' | '-D'): Promise<void> {
    if (this.destroyed) throw new Error(`netns lab ${this.prefix} is destroyed`);
    const byNs = new Map<number, string[]>();
    for (const r of rules) byNs.set(r.at, [...(byNs.get(r.at) ?? []), `${op} ${r.chain} ${r.spec}`]);
    await Promise.all([...byNs].map(([i, lines]) => restore(this.nsName(i), lines)));
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f);
    this.queue = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private index(id: string): number {
    const i = this.ids.indexOf(id);
    if (i < 0) throw new Error(`netns lab: no node ${id}`);
    return i;
  }

  private pair(a: string, b: string): [number, number] {
    if (a === b) throw new Error(`netns lab: a link needs two nodes, got ${a} twice`);
    return [this.index(a), this.index(b)];
  }

  private others(i: number): number[] {
    return this.ids.map((_, j) => j).filter((j) => j !== i);
  }

  private nsName(i: number): string {
    return `${this.prefix}-${this.ids[i]}`;
  }

  private ifname(kind: 'h' | 'n', i: number): string {
    return `${this.prefix}${kind}${i.toString(36)}`;
  }
}

/** Short (interface names hold 15 characters) and free of regex syntax (cleanupStale matches on it). */
function checkRoot(prefixRoot: string): void {
  if (!/^[a-z]{1,4}$/.test(prefixRoot)) throw new RangeError(`prefixRoot must be 1–4 lowercase letters, got ${JSON.stringify(prefixRoot)}`);
}

function restoreInput(lines: readonly string[]): string {
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}

function restore(ns: string, lines: readonly string[]): Promise<void> {
  return runAsync('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], restoreInput(lines));
}

/** Labs not yet destroyed, removed on exit, or on SIGINT/SIGTERM when nobody else handles those. */
const live = new Set<NetnsLab>();

function destroyAll(): void {
  for (const lab of live) {
    try {
      lab.destroy();
    } catch {
      // exiting anyway; cleanupStale finds what is left
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  // With another listener the process decides itself whether to exit (then 'exit' cleans up); alone, ours would
  // swallow the signal: clean up and die of it, as the default action would have.
  if (process.listenerCount(sig) > 1) return;
  destroyAll();
  untrackAll();
  process.kill(process.pid, sig);
}

function track(lab: NetnsLab): void {
  if (live.size === 0) {
    process.on('exit', destroyAll);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(lab);
}

function untrack(lab: NetnsLab): void {
  if (live.delete(lab) && live.size === 0) untrackAll();
}

function untrackAll(): void {
  live.clear();
  process.removeListener('exit', destroyAll);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}
