import type { NodeId } from './types.js';

/** A ReadIndex request waiting for a quorum of heartbeat acknowledgements. */
interface PendingRead {
  readonly index: number;
  readonly from: NodeId;
  /** The requester's context, returned in its ReadState. */
  readonly context: string;
  readonly acks: Set<NodeId>;
}

/**
 * Safe ReadIndex (Raft thesis §6.4): the leader records its commit index with the request, confirms it is still leader
 * by a heartbeat round tagged with a key of its own, and releases the read once a quorum has answered that round. A
 * quorum answering a later round also confirms every earlier request, so requests are released in order.
 *
 * Rounds are keyed by the leader (term and a sequence number), never by the requester's context: a context can repeat
 * (a restarted client), and a late answer to an earlier round must not confirm a newer read.
 */
export class ReadOnlyQueue {
  private readonly pending = new Map<string, PendingRead>();
  private readonly order: string[] = [];
  private seq = 0;

  /** Queues a read and returns the key its heartbeat round carries. */
  add(term: number, index: number, from: NodeId, context: string, self: NodeId): string {
    const key = `${term}.${++this.seq}`;
    this.pending.set(key, { index, from, context, acks: new Set([self]) });
    this.order.push(key);
    return key;
  }

  /** Records an acknowledgement of round `key`; returns how many nodes have acknowledged it (0 when unknown). */
  ack(from: NodeId, key: string): number {
    const r = this.pending.get(key);
    if (!r) return 0;
    r.acks.add(from);
    return r.acks.size;
  }

  /** Removes and returns every request up to and including round `key`. */
  advance(key: string): PendingRead[] {
    const at = this.order.indexOf(key);
    if (at < 0) return [];
    return this.order.splice(0, at + 1).map((k) => {
      const r = this.pending.get(k)!;
      this.pending.delete(k);
      return r;
    });
  }

  lastKey(): string | undefined {
    return this.order[this.order.length - 1];
  }

  clear(): void {
    this.pending.clear();
    this.order.length = 0;
  }
}
