import { randomBytes } from 'node:crypto';
import type { Snapshot } from '../raft/index.js';
import { encodeSnapshot } from '../storage/snapshot-file.js';
import { ClusterStoppedError } from './errors.js';
import type { Timers } from '../io/clock.js';
import type { RaftRuntime } from './raft-runtime.js';
import type { SnapshotRequest } from './rpc.js';
import type { StateMachine } from './state/cluster-state-machine.js';

/** The largest chunk one `read` returns: far below the 16 MiB default frame limit, and any sane one. */
export const MAX_SNAPSHOT_CHUNK = 4 * 1024 * 1024;
/** An export nobody asked about for this long is dropped (a CLI that died half-way). */
const IDLE_MS = 60_000;
/** Exports held at once: each keeps a whole image in memory. */
const MAX_EXPORTS = 2;

/** What `read` answers. */
export type SnapshotReadReply =
  | { readonly state: 'pending' }
  | { readonly state: 'ready'; readonly index: number; readonly term: number; readonly total: number; readonly data: Uint8Array };

interface Export {
  /** The snapshot file's bytes once encoded; until then null. */
  bytes: Buffer | null;
  meta: { index: number; term: number } | null;
  error: Error | null;
  expiry: NodeJS.Timeout;
}

export interface SnapshotExporterDeps {
  readonly runtime: RaftRuntime;
  readonly stateMachine: StateMachine;
  readonly timers: Timers;
  /** How long the linearizable read point may take to confirm (the node's requestTimeout). */
  readonly requestTimeoutMs: number;
}

/**
 * Serves `catga-cluster snapshot save`: a snapshot of the replicated state at a linearizable point, in the snapshot
 * file format the node itself writes (storage/snapshot-file.ts), so the CLI saves and restores it with the library's
 * own code.
 *
 * Consistency: a ReadIndex barrier first (the leader confirms with a quorum; this node, leader or not, then waits until
 * it has applied that far), so the image holds every write acknowledged before the request. Then, in one synchronous
 * step, the applied index, its term, the configuration in force there and the state machine's capture are taken:
 * entries apply synchronously between the runtime's awaits, so all four belong to one index. The image is encoded in
 * slices between other work, as the node's own snapshots are, while the node keeps applying entries.
 *
 * The export is fetched in chunks (a reply must fit the caller's frame limit) and answered `pending` until it is
 * encoded, so the caller keeps its connection busy rather than waiting silently.
 */
export class SnapshotExporter {
  private readonly exports = new Map<string, Export>();

  constructor(private readonly deps: SnapshotExporterDeps) {}

  /** Answers `begin` with `{ id, node }`, `read` with a SnapshotReadReply, `end` with null. */
  readonly handle = async (req: SnapshotRequest): Promise<unknown> => {
    switch (req.op) {
      case 'begin':
        // The node's id: a caller that dialed an address learns whom to send the reads to.
        return { id: this.begin(), node: this.deps.runtime.nodeId };
      case 'read':
        return this.read(req.id, req.offset, req.length);
      case 'end':
        this.drop(req.id);
        return null;
      default:
        throw new Error(`unknown snapshot request ${JSON.stringify((req as { op?: unknown }).op)}`);
    }
  };

  private begin(): string {
    if (!this.deps.runtime.isRunning) throw new ClusterStoppedError();
    if (this.exports.size >= MAX_EXPORTS) {
      throw new Error(`${this.exports.size} snapshot exports are in progress on this node; retry in a minute`);
    }
    const id = randomBytes(12).toString('hex');
    const ex: Export = { bytes: null, meta: null, error: null, expiry: this.expiry(id) };
    this.exports.set(id, ex);
    this.capture().then(
      (snap) => {
        ex.bytes = encodeSnapshot(snap);
        ex.meta = { index: snap.meta.index, term: snap.meta.term };
      },
      (e: unknown) => {
        ex.error = e instanceof Error ? e : new Error(String(e));
      },
    );
    return id;
  }

  private read(id: string, offset: number, length: number): SnapshotReadReply {
    const ex = this.exports.get(id);
    if (!ex) throw new Error(`no snapshot export ${JSON.stringify(id)} here (it ended, expired after ${IDLE_MS / 1000} s idle, or the node restarted)`);
    ex.expiry.refresh();
    if (ex.error) {
      this.drop(id);
      throw ex.error;
    }
    if (!ex.bytes || !ex.meta) return { state: 'pending' };
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > ex.bytes.length || !Number.isSafeInteger(length) || length <= 0) {
      throw new RangeError(`bad snapshot chunk: offset ${offset}, length ${length} of ${ex.bytes.length} bytes`);
    }
    const data = ex.bytes.subarray(offset, offset + Math.min(length, MAX_SNAPSHOT_CHUNK));
    return { state: 'ready', index: ex.meta.index, term: ex.meta.term, total: ex.bytes.length, data };
  }

  private drop(id: string): void {
    const ex = this.exports.get(id);
    if (!ex) return;
    clearTimeout(ex.expiry);
    this.exports.delete(id);
  }

  /** Unref'd: an export left behind never keeps the process alive. */
  private expiry(id: string): NodeJS.Timeout {
    const t = setTimeout(() => this.exports.delete(id), IDLE_MS);
    t.unref();
    return t;
  }

  private async capture(): Promise<Snapshot> {
    const { runtime, stateMachine, timers, requestTimeoutMs } = this.deps;
    await runtime.readBarrier(requestTimeoutMs);
    // Normally at once. The term is missing only while a snapshot from the leader jumped this node's log past what it
    // has applied, until that snapshot is installed (a Ready away).
    for (let tries = 0; ; tries++) {
      if (!runtime.isRunning) throw new ClusterStoppedError();
      const core = runtime.raft.core;
      const index = runtime.applied;
      const term = core.log.term(index);
      if (term !== undefined) {
        if (index === 0) throw new Error('nothing to save: this node has applied no entry yet');
        const membership = core.membershipAt(index);
        // Captures synchronously on the call; only the encoding of the copied rows is spread over later turns.
        const data = await stateMachine.snapshotInSlices(() => new Promise((r) => timers.setImmediate(r)));
        return { meta: { index, term, membership }, data };
      }
      if (tries >= 100) throw new Error(`cannot find the term of applied index ${index}; retry`);
      await new Promise<void>((r) => timers.setTimeout(r, 10));
    }
  }
}
