import type { EventQueue } from './event-queue.js';
import type { Violation } from './invariants.js';

interface Pending {
  readonly what: string;
  readonly member: string;
  readonly started: number;
  readonly limit: number;
}

/** How often the watch looks, in simulated ms. */
const EVERY_MS = 20;

/**
 * Every operation a client starts must settle — succeed or fail — within its bound (the request timeout, measured on
 * the slowest admissible clock), also when its node steps down, is cut off or loses the message that would have
 * answered it. A crash ends the operations of the crashed node: its process is gone. `unsettled` otherwise.
 */
export class SettleWatch {
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  /** Operations watched, and the longest any took (simulated ms). */
  readonly stats = { watched: 0, longestMs: 0 };

  constructor(
    private readonly queue: EventQueue,
    private readonly fail: (v: Violation) => void,
    endAt: number,
  ) {
    const look = () => {
      this.check();
      if (this.queue.now < endAt) this.queue.schedule(EVERY_MS, look);
    };
    this.queue.schedule(EVERY_MS, look);
  }

  /** Starts watching an operation on `member`; call the returned function when it settles. */
  watch(member: string, what: string, limitMs: number): () => void {
    const id = ++this.seq;
    this.stats.watched++;
    const started = this.queue.now;
    this.pending.set(id, { what, member, started, limit: limitMs });
    return () => {
      if (this.pending.delete(id)) this.stats.longestMs = Math.max(this.stats.longestMs, this.queue.now - started);
    };
  }

  /** The member crashed: its operations end with it. */
  crashed(member: string): void {
    for (const [id, p] of this.pending) if (p.member === member) this.pending.delete(id);
  }

  /** Operations started before `t` that have not settled. */
  pendingSince(t: number): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.started < t) n++;
    return n;
  }

  private check(): void {
    for (const [id, p] of this.pending) {
      if (this.queue.now - p.started <= p.limit) continue;
      this.pending.delete(id);
      this.fail({
        kind: 'unsettled',
        detail: `${p.what} on ${p.member}, started at ${p.started.toFixed(3)}, had not settled ${(this.queue.now - p.started).toFixed(1)} ms later (bound ${p.limit.toFixed(0)} ms)`,
      });
    }
  }
}
