/**
 * An etcd of N members (3 unless told) on 127.0.0.1, for the etcd backend's tests and the side-by-side benchmarks:
 * one process per member, data dirs under one parent (fsync on: etcd's default, nothing turns it off), one etcd3
 * client per member. Every process is killed and every data dir removed by `destroy()`, or at exit if the test or
 * benchmark dies first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { EtcdKeys } from '../../lib/cluster/etcd/keys.js';
import { freePorts } from '../transport/helpers.js';
import { findEtcd, type EtcdBinary } from './etcd-binary.js';
import { sleep, waitUntil } from './process-cluster.js';

const exitHooks = new Set<() => void>();
process.on('exit', () => {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // the next cluster is still torn down
    }
  }
});

/** Runs `fn` at exit unless the returned function is called first (after an orderly teardown). */
function atExit(fn: () => void): () => void {
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

export interface EtcdClusterOptions {
  readonly binary: EtcdBinary;
  /** Parent of the data dirs (the disk being measured). */
  readonly dataParent: string;
  /** Client ports clientPort..+members−1, peer ports peerPort..+members−1. */
  readonly clientPort: number;
  readonly peerPort: number;
  /** Explicit ports per member, instead of consecutive ones from clientPort/peerPort. */
  readonly clientPorts?: readonly number[];
  readonly peerPorts?: readonly number[];
  /** Members e1..eN; default 3. */
  readonly members?: number;
  readonly heartbeatMs: number;
  readonly electionMs: number;
}

export class EtcdMember {
  private child: ChildProcess | null = null;
  private current: Etcd3 | null = null;
  /** The last lines etcd printed, for errors. */
  output = '';
  /** etcd's member id (decimal string), known once the member answered a status call. */
  memberId = '';

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    private readonly args: readonly string[],
    private readonly binary: string,
  ) {}

  get running(): boolean {
    return this.child !== null;
  }

  /** A client talking to this member only, with the etcd3 client's retries and circuit breaker off. */
  get client(): Etcd3 {
    this.current ??= noRetryClient(this.clientUrl, { dialTimeout: 2000 });
    return this.current;
  }

  start(): void {
    if (this.child) throw new Error(`etcd ${this.name} is already running`);
    const child = spawn(this.binary, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-8000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
    this.child = child;
  }

  /** Sends a signal and resolves once the process is gone; the client is dropped (its channel would back off). */
  async stop(sig: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(sig);
    await gone;
    this.closeClient();
  }

  /** SIGSTOP: the member stops answering but keeps its connections open, as a hung or overloaded one does. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  killNow(): void {
    this.child?.kill('SIGKILL');
    this.closeClient();
  }

  private closeClient(): void {
    this.current?.close();
    this.current = null;
  }
}

export class EtcdCluster {
  readonly members: EtcdMember[];
  readonly dataRoot: string;
  private readonly unguard: () => void;

  constructor(readonly opts: EtcdClusterOptions) {
    this.dataRoot = mkdtempSync(join(opts.dataParent, 'catga-etcd-'));
    const names = Array.from({ length: opts.members ?? 3 }, (_, i) => `e${i + 1}`);
    const peer = (i: number) => `http://127.0.0.1:${opts.peerPorts?.[i] ?? opts.peerPort + i}`;
    const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
    this.members = names.map((name, i) => {
      const client = `http://127.0.0.1:${opts.clientPorts?.[i] ?? opts.clientPort + i}`;
      const args = [
        `--name=${name}`,
        `--data-dir=${join(this.dataRoot, name)}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer(i)}`,
        `--initial-advertise-peer-urls=${peer(i)}`,
        `--initial-cluster=${initial}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=catga-etcd',
        `--heartbeat-interval=${opts.heartbeatMs}`,
        `--election-timeout=${opts.electionMs}`,
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=error',
      ];
      return new EtcdMember(name, client, args, opts.binary.path);
    });
    this.unguard = atExit(() => this.destroyNow());
  }

  async start(): Promise<void> {
    for (const m of this.members) m.start();
    await this.settled(20_000);
  }

  /** Restarts a stopped member on its data dir and waits until the cluster agrees on a leader again. */
  async restart(m: EtcdMember): Promise<void> {
    m.start();
    await this.settled(20_000);
  }

  /**
   * The leader, once every running member answers the maintenance status call naming the same leader, that leader is
   * running, and every member has applied what the leader had when asked.
   */
  async settled(timeoutMs = 10_000): Promise<EtcdMember> {
    return waitUntil(
      'a settled etcd cluster',
      timeoutMs,
      async () => {
        const up = this.members.filter((m) => m.running);
        const all = await Promise.all(up.map((m) => m.client.maintenance.status({ deadline: Date.now() + 1000 })));
        up.forEach((m, i) => (m.memberId = all[i]!.header.member_id));
        const leaderId = all[0]!.leader;
        if (leaderId === '0' || !all.every((s) => s.leader === leaderId)) return undefined;
        const leader = up.find((m) => m.memberId === leaderId);
        if (!leader) return undefined;
        const index = Number(all[up.indexOf(leader)]!.raftIndex);
        return all.every((s) => Number(s.raftIndex) >= index) ? leader : undefined;
      },
      20,
    );
  }

  /** Polls `among` until one of them answers the status call naming itself leader; resolves with the time found. */
  async leaderAmong(among: readonly EtcdMember[], timeoutMs: number): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = await Promise.all(among.map((m) => m.client.maintenance.status({ deadline: Date.now() + 500 }).catch(() => null)));
      const i = all.findIndex((s, j) => s !== null && s.leader === s.header.member_id && s.leader === among[j]!.memberId);
      if (i >= 0) return among[i]!;
      if (Date.now() > deadline) throw new Error(`no etcd leader among ${among.map((m) => m.name).join(', ')} within ${timeoutMs} ms`);
      await sleep(1);
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop('SIGKILL')));
    rmSync(this.dataRoot, { recursive: true, force: true });
    this.unguard();
  }

  /** Synchronous teardown at exit. */
  private destroyNow(): void {
    for (const m of this.members) m.killNow();
    rmSync(this.dataRoot, { recursive: true, force: true });
  }
}

/**
 * A started etcd of `members` members on free loopback ports, data under the system temp dir: for tests. Heartbeat
 * 50 ms and election 500 ms, so a lost etcd leader is replaced within a second and leases as short as 1 s exist.
 */
export async function startEtcd(members = 3): Promise<EtcdCluster> {
  const ports = await freePorts(2 * members);
  const spread = (from: number) => ports.slice(from, from + members);
  // EtcdCluster takes consecutive ports; free ports are not, so the cluster gets its own list.
  const cluster = new EtcdCluster({
    binary: findEtcd(),
    dataParent: tmpdir(),
    clientPort: 0,
    peerPort: 0,
    clientPorts: spread(0),
    peerPorts: spread(members),
    members,
    heartbeatMs: 50,
    electionMs: 500,
  });
  try {
    await cluster.start();
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
  return cluster;
}

/** The members' client URLs, for `backend: { type: 'etcd', hosts }`. */
export function etcdHosts(cluster: EtcdCluster): string[] {
  return cluster.members.map((m) => m.clientUrl);
}

/** A raw etcd3 client for assertions and fault set-up: every call goes to one host once (no retries, no breaker). */
export function noRetryClient(hosts: string | readonly string[], extra: Omit<IOptions, 'hosts'> = {}): Etcd3 {
  return new Etcd3({ ...extra, hosts: typeof hosts === 'string' ? hosts : [...hosts], faultHandling: { host: () => noop, global: noop } });
}

/** A key layout under a prefix of its own, so tests sharing one etcd never see each other's keys. */
export function freshKeys(): EtcdKeys {
  return new EtcdKeys(`t/${randomUUID()}/`);
}
