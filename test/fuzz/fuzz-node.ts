import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { IpcRequests } from '../support/ipc-requests.js';
import type { DistributiveOmit, NodeReply, NodeRequest } from '../support/node-protocol.js';
import { NODE_MAIN } from '../support/process-cluster.js';

/**
 * One node process started as test/support/process-cluster.ts starts it (test/e2e/node-main.js, CATGA_* environment,
 * IPC requests), but every line it prints is handed to `onLine` — a fuzz run reads tens of thousands of drop reasons,
 * more than NodeProcess keeps — and its exit is recorded as a crash unless we asked for it.
 */
export class FuzzNode {
  private child: ChildProcess | null = null;
  private readonly requests: IpcRequests;
  private stopping = false;
  /** Exits we did not ask for: code or signal. */
  readonly crashes: string[] = [];
  /** The last lines printed, for error messages. */
  tail: string[] = [];

  constructor(
    readonly id: string,
    private readonly env: Record<string, string>,
    private readonly onLine: (node: FuzzNode, line: string) => void = () => undefined,
  ) {
    this.requests = new IpcRequests(id, (name, message) => Object.assign(new Error(message), { name }));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null;
  }

  start(timeoutMs = 10_000): Promise<void> {
    if (this.child) throw new Error(`${this.id} is already running`);
    this.stopping = false;
    const child = fork(NODE_MAIN, [], { env: { ...process.env, ...this.env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
        this.tail.push(line);
        if (this.tail.length > 40) this.tail = this.tail.slice(-20);
        this.onLine(this, line);
      });
    }
    child.on('message', (r: NodeReply) => this.requests.reply(r));
    // 'close' comes after the output streams ended, so the lines printed just before an exit are in `tail`.
    child.on('close', (code, signal) => {
      if (this.child === child) this.child = null;
      if (!this.stopping) this.crashes.push(`${this.id} exited with ${signal ?? `code ${code}`}`);
      this.requests.rejectAll(new Error(`${this.id} exited`));
    });
    return this.requests.started(timeoutMs, () => this.tail.join('\n'));
  }

  request<T = unknown>(req: DistributiveOmit<NodeRequest, 'id'>, timeoutMs = 15_000): Promise<T> {
    const child = this.child;
    if (!child) return Promise.reject(new Error(`${this.id} is not running`));
    return this.requests.send<T>(child, req, timeoutMs);
  }

  /** Resident set size in bytes, from /proc (Linux); null elsewhere or when not running. */
  rss(): number | null {
    const pid = this.child?.pid;
    if (pid === undefined) return null;
    try {
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : null;
    } catch {
      return null;
    }
  }

  /** kill -9, not counted as a crash; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = true;
    const gone = new Promise<void>((r) => child.once('close', () => r()));
    child.kill('SIGKILL');
    await gone;
  }
}
