import { ApplyError } from './apply-error.js';

/** Identifies one proposal of one client process, so a retry of it applies once. */
export interface SessionId {
  readonly client: string;
  readonly seq: number;
}

interface Session {
  maxSeq: number;
  lastIndex: number;
  readonly results: Map<number, unknown>;
}

/** Results kept per client: a retry older than this many proposals gets SESSION_EXPIRED instead of a second apply. */
const WINDOW = 4096;
/** A client silent for this many log entries is forgotten. */
const IDLE_ENTRIES = 200_000;

export const SESSION_EXPIRED = Symbol('session expired');

/** Marks a remembered ApplyError in a snapshot image. */
const APPLY_ERROR = 1;

/**
 * Client sessions (Raft thesis §6.3): the result of each (client, seq) is remembered so a proposal retried after an
 * unknown outcome returns the first result instead of applying twice. Eviction depends on log indexes only, so every
 * node evicts the same sessions at the same entry.
 */
export class SessionTable {
  private sessions = new Map<string, Session>();

  /** The remembered result, SESSION_EXPIRED, or undefined when this is the first time. */
  lookup(id: SessionId): unknown {
    const s = this.sessions.get(id.client);
    if (!s) return undefined;
    if (s.results.has(id.seq)) return s.results.get(id.seq);
    if (id.seq <= s.maxSeq - WINDOW) return SESSION_EXPIRED;
    return undefined;
  }

  record(id: SessionId, index: number, result: unknown): void {
    let s = this.sessions.get(id.client);
    if (!s) {
      s = { maxSeq: 0, lastIndex: index, results: new Map() };
      this.sessions.set(id.client, s);
    }
    s.results.set(id.seq, result);
    s.lastIndex = index;
    if (id.seq > s.maxSeq) {
      s.maxSeq = id.seq;
      // Oldest first, in insertion (apply) order, stopping at the first result still in the window: O(evicted), not
      // O(window) per entry. A result applied out of order may outlive its window briefly; it is still the true result.
      for (const seq of s.results.keys()) {
        if (seq > s.maxSeq - WINDOW) break;
        s.results.delete(seq);
      }
    }
    if (index % 1024 === 0) this.evictIdle(index);
  }

  private evictIdle(index: number): void {
    for (const [client, s] of this.sessions) if (s.lastIndex < index - IDLE_ENTRIES) this.sessions.delete(client);
  }

  /**
   * Results are plain data except ApplyError, which a plain-data encoding would turn into an ordinary object (and a
   * retried failing command into a success): it is tagged, `[seq, message, 1]`, and rebuilt on restore.
   */
  snapshot(): unknown {
    return [...this.sessions].map(([c, s]) => [
      c,
      s.maxSeq,
      s.lastIndex,
      [...s.results].map(([seq, r]) => (r instanceof ApplyError ? [seq, r.message, APPLY_ERROR] : [seq, r])),
    ]);
  }

  restore(image: unknown): void {
    this.sessions = new Map(
      (image as [string, number, number, ([number, unknown] | [number, string, typeof APPLY_ERROR])[]][]).map(([c, maxSeq, lastIndex, results]) => [
        c,
        { maxSeq, lastIndex, results: new Map(results.map((r) => [r[0], r.length === 3 && r[2] === APPLY_ERROR ? new ApplyError(String(r[1])) : r[1]])) },
      ]),
    );
  }
}
