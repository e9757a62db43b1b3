import type { NodeId } from '../raft/index.js';

/** Running totals, kept per peer (and for connections not yet identified) for metrics. */
export interface Counters {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Raft messages and replies dropped: no connection, send queue full, or too large for the peer. */
  dropped: number;
  /** Authenticated connections established. */
  connects: number;
  /** Connections refused or dropped for a reason: handshake failure, malformed or oversized input, timeout. */
  rejects: number;
}

export interface PeerStats extends Counters {
  /** An authenticated connection is up. */
  readonly connected: boolean;
  /** Bytes written to the connection and not yet handed to the kernel (bounded by sendQueueBytes). */
  readonly queuedBytes: number;
}

export interface TransportStats {
  /** Every peer plus connections that never identified themselves (garbage, failed handshakes). */
  readonly total: Counters;
  readonly peers: Readonly<Record<NodeId, PeerStats>>;
}

export function newCounters(): Counters {
  return { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, connects: 0, rejects: 0 };
}

export function addCounters(into: Counters, c: Counters): void {
  into.framesIn += c.framesIn;
  into.framesOut += c.framesOut;
  into.bytesIn += c.bytesIn;
  into.bytesOut += c.bytesOut;
  into.dropped += c.dropped;
  into.connects += c.connects;
  into.rejects += c.rejects;
}
