import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import { IpcRequests } from './ipc-requests.js';
import type { NetnsLab } from './netns.js';
import type { DistributiveOmit, NodeReply, NodeRequest } from './node-protocol.js';

/**
 * Compiled by `npm run build`; tests and benchmarks run real processes, not the TypeScript source. Found next to
 * this file when it runs compiled (dist/test/support, as the benchmarks do), under dist/ when it runs from source.
 */
export const NODE_MAIN = existsSync(resolve(__dirname, '../e2e/node-main.js'))
  ? resolve(__dirname, '../e2e/node-main.js')
  : resolve(__dirname, '../../dist/test/e2e/node-main.js');

/** Throws a clear error when the node program has not been built. */
export function assertBuilt(): void {
  if (!existsSync(NODE_MAIN)) throw new Error(`${NODE_MAIN} is missing: run npm run build first`);
}

export class RemoteError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Turns a command line into one that runs it elsewhere (e.g. `ip netns exec <ns> …`); the wrapper must exec it. */
export type Launcher = (command: string, args: readonly string[]) => { command: string; args: string[] };

/** One node process: start, request over IPC, kill -9, pause, restart on the same dataDir. */
export class NodeProcess {
  private child: ChildProcess | null = null;
  private readonly requests: IpcRequests;
  /** Environment for the next starts on top of the node's own; see setEnv. */
  private envOverrides: Record<string, string> = {};
  private stopped = false;
  output = '';

  constructor(
    readonly id: string,
    private readonly env: Record<string, string>,
    /** Without one, the node is forked as usual. */
    private readonly launcher?: Launcher,
  ) {
    this.requests = new IpcRequests(id, (name, message) => new RemoteError(name, message));
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stopped by pause() (SIGSTOP) and not yet resumed. */
  get paused(): boolean {
    return this.stopped;
  }

  /** Environment for every later start, over the node's own (e.g. another clock rate for a restart). */
  setEnv(overrides: Record<string, string>): void {
    this.envOverrides = { ...this.envOverrides, ...overrides };
  }

  /** SIGSTOP: the process keeps its sockets but runs nothing until resume(); requests queue up unanswered. */
  pause(): void {
    if (!this.child || this.stopped) return;
    this.child.kill('SIGSTOP');
    this.stopped = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    if (!this.child || !this.stopped) return;
    this.child.kill('SIGCONT');
    this.stopped = false;
  }

  start(timeoutMs = 10_000): Promise<void> {
    if (this.child) throw new Error(`${this.id} is already running`);
    const env = { ...process.env, ...this.env, ...this.envOverrides };
    const stdio: ['ignore', 'pipe', 'pipe', 'ipc'] = ['ignore', 'pipe', 'pipe', 'ipc'];
    const child = this.launcher ? spawnThrough(this.launcher, env, stdio) : fork(NODE_MAIN, [], { env, stdio });
    this.child = child;
    const keep = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('message', (r: NodeReply) => this.requests.reply(r));
    child.on('exit', () => {
      if (this.child === child) {
        this.child = null;
        this.stopped = false;
      }
      this.requests.rejectAll(new Error(`${this.id} exited`));
    });
    return this.requests.started(timeoutMs, () => this.output);
  }

  request<T = unknown>(req: DistributiveOmit<NodeRequest, 'id'>, timeoutMs = 15_000): Promise<T> {
    const child = this.child;
    if (!child) return Promise.reject(new Error(`${this.id} is not running`));
    return this.requests.send<T>(child, req, timeoutMs);
  }

  status(timeoutMs = 2000): Promise<RuntimeStatus> {
    return this.request<RuntimeStatus>({ op: 'status' }, timeoutMs);
  }

  /** Sends a signal; for SIGKILL, resolves once the process is gone. */
  async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (sig !== 'SIGKILL' && sig !== 'SIGTERM') {
      child.kill(sig);
      return;
    }
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(sig);
    await gone;
  }
}

/**
 * What fork() would run, through the launcher. The IPC channel (NODE_CHANNEL_FD) survives the wrapper because it
 * execs the node: the child's pid is the node's own, so SIGSTOP and SIGKILL reach the node itself.
 */
function spawnThrough(launcher: Launcher, env: NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe', 'ipc']): ChildProcess {
  const { command, args } = launcher(process.execPath, [...process.execArgv, NODE_MAIN]);
  return spawn(command, args, { env, stdio });
}

export interface ProcessClusterOptions {
  readonly ids?: readonly string[];
  /** Ports basePort, basePort + 1, …; or `ports`, one per id (free ones, say). */
  readonly basePort?: number;
  readonly ports?: readonly number[];
  readonly secret?: string;
  readonly env?: Record<string, string>;
  /** Where the temp dataDirs go (default: the system temp dir). */
  readonly dataParent?: string;
  /** Extra environment for single nodes, by id (applied after `env`). */
  readonly nodeEnv?: Readonly<Record<string, Record<string, string>>>;
  /**
   * Run each node in its own network namespace of this lab (made for the same ids), listening on its private
   * address. The caller owns the lab and destroys it after the cluster.
   */
  readonly netns?: NetnsLab;
}

/** N node processes with their own temp dataDirs, removed by `destroy()`: on 127.0.0.1, or in a NetnsLab. */
export class ProcessCluster {
  readonly nodes: NodeProcess[];
  readonly dataRoot: string;
  readonly members: string[];

  constructor(opts: ProcessClusterOptions) {
    this.dataRoot = mkdtempSync(join(opts.dataParent ?? tmpdir(), 'catga-e2e-'));
    const ids = opts.ids ?? ['n1', 'n2', 'n3'];
    const lab = opts.netns;
    const port = (i: number) => opts.ports?.[i] ?? (opts.basePort ?? 0) + i;
    this.members = ids.map((id, i) => `${id}=${lab ? lab.address(id) : '127.0.0.1'}:${port(i)}`);
    this.secret = opts.secret ?? 'e2e-test-secret';
    this.baseEnv = opts.env ?? {};
    const launcher = (id: string): Launcher | undefined => (lab ? (command, args) => lab.wrap(id, command, args) : undefined);
    this.nodes = ids.map(
      (id) =>
        new NodeProcess(
          id,
          {
            CATGA_NODE_ID: id,
            CATGA_MEMBERS: this.members.join(','),
            CATGA_DATA_DIR: join(this.dataRoot, id),
            CATGA_SECRET: this.secret,
            CATGA_QUIET: '1',
            ...opts.env,
            ...opts.nodeEnv?.[id],
          },
          launcher(id),
        ),
    );
  }

  private readonly secret: string;
  private readonly baseEnv: Record<string, string>;

  /**
   * A new node process on 127.0.0.1:`port` that joins through `seeds` (host:port) instead of a member list; added to
   * `nodes` and started. Its dataDir is fresh unless a node of that id ran before.
   */
  async join(id: string, port: number, seeds: readonly string[], env: Record<string, string> = {}): Promise<NodeProcess> {
    const n = new NodeProcess(id, {
      CATGA_NODE_ID: id,
      CATGA_JOIN: seeds.join(','),
      CATGA_ADVERTISE: `127.0.0.1:${port}`,
      CATGA_DATA_DIR: join(this.dataRoot, id),
      CATGA_SECRET: this.secret,
      CATGA_QUIET: '1',
      ...this.baseEnv,
      ...env,
    });
    this.nodes.push(n);
    await n.start();
    return n;
  }

  /** Forgets a node (after it was killed for good), so leader() and destroy() pass it over. */
  forget(n: NodeProcess): void {
    const i = this.nodes.indexOf(n);
    if (i >= 0) this.nodes.splice(i, 1);
  }

  node(id: string): NodeProcess {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
  }

  /** The node that says it leads, once one does and the others agree (bounded). */
  async leader(timeoutMs = 5000, among: readonly NodeProcess[] = this.nodes): Promise<NodeProcess> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = among.filter((n) => n.running);
      const statuses = await Promise.all(live.map((n) => n.request<{ isLeader: boolean; leaseValid: boolean }>({ op: 'status' }).catch(() => null)));
      const i = statuses.findIndex((s) => s?.isLeader && s.leaseValid);
      if (i >= 0) return live[i]!;
      if (Date.now() > deadline) throw new Error(`no leader among ${live.map((n) => n.id)} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.signal('SIGKILL')));
    rmSync(this.dataRoot, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every `everyMs` until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(everyMs);
  }
}

/** The p-quantile (0..1) of `xs` by nearest rank; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = xs.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
