import type { ChildProcess } from 'node:child_process';
import type { DistributiveOmit, NodeReply, NodeRequest } from './node-protocol.js';

/** A node process announces it has started with a reply to this id. */
export const STARTED_ID = 0;

/**
 * Requests to a node process over IPC and their replies, matched by id, each with a deadline. Shared by the test
 * harness's NodeProcess and the fuzzer's FuzzNode.
 */
export class IpcRequests {
  private seq = STARTED_ID;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly nodeId: string,
    /** Turns a reply's error into the Error the caller sees. */
    private readonly remoteError: (name: string, message: string) => Error,
  ) {}

  /** Resolves when the process reports it started; rejects after `timeoutMs` with `describe()` in the message. */
  started(timeoutMs: number, describe: () => string): Promise<void> {
    return this.await(STARTED_ID, timeoutMs, () => `${this.nodeId} did not start within ${timeoutMs} ms:\n${describe()}`, describe).then(() => undefined);
  }

  send<T>(child: ChildProcess, req: DistributiveOmit<NodeRequest, 'id'>, timeoutMs: number): Promise<T> {
    const id = ++this.seq;
    const reply = this.await(id, timeoutMs, () => `${this.nodeId}: no answer to ${req.op} within ${timeoutMs} ms`);
    // With a callback, a channel that closed under us (the process is exiting) fails this request instead of
    // raising an unhandled 'error' event.
    child.send({ ...req, id }, (e) => e && this.settle(id, new Error(`${this.nodeId}: ${req.op} not sent (${e.message})`)));
    return reply as Promise<T>;
  }

  /** Hands a reply from the process to its request. */
  reply(r: NodeReply): void {
    this.settle(r.id, r.ok ? undefined : this.remoteError(r.error.name, r.error.message), r.ok ? r.result : undefined);
  }

  /** The process is gone: every open request fails. */
  rejectAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private await(id: number, timeoutMs: number, timeoutMessage: () => string, onReject?: () => string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(timeoutMessage()));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(onReject ? new Error(`${e.message}:\n${onReject()}`) : e);
        },
      });
    });
  }

  private settle(id: number, error: Error | undefined, value?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (error) p.reject(error);
    else p.resolve(value);
  }
}
