import type { NodeId } from './types.js';

/** A ReadIndex request waiting for a quorum of heartbeat acknowledgements. */
interface PendingRead {
  readonly index: number;
  readonly from: NodeId;
  readonly context: string;
  readonly acks: Set<NodeId>;
}

/**
 * Safe ReadIndex (Raft thesis §6.4): the leader records its commit index with the request, confirms it is still leader
 * by a heartbeat round tagged with the request's context, and releases the read once a quorum has answered that round.
 * A quorum answering a later request also confirms every earlier one, so requests are released in order.
 */
export class ReadOnlyQueue {
  private readonly pending = new Map<string, PendingRead>();
  private readonly order: string[] = [];

  add(index: number, from: NodeId, context: string, self: NodeId): void {
    if (this.pending.has(context)) return;
    this.pending.set(context, { index, from, context, acks: new Set([self]) });
    this.order.push(context);
  }

  /** Records an acknowledgement; returns how many nodes have acknowledged `context` (0 when unknown). */
  ack(from: NodeId, context: string): number {
    const r = this.pending.get(context);
    if (!r) return 0;
    r.acks.add(from);
    return r.acks.size;
  }

  /** Removes and returns every request up to and including `context`. */
  advance(context: string): PendingRead[] {
    const at = this.order.indexOf(context);
    if (at < 0) return [];
    const done = this.order.splice(0, at + 1);
    return done.map((c) => {
      const r = this.pending.get(c)!;
      this.pending.delete(c);
      return r;
    });
  }

  lastContext(): string | undefined {
    return this.order[this.order.length - 1];
  }

  clear(): void {
    this.pending.clear();
    this.order.length = 0;
  }
}
