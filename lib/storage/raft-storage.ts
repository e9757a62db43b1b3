import type { Entry, HardState, Snapshot } from '../raft/types.js';

/** What a node finds on disk when it starts. `entries` follow `snapshot` (or index 0) without gaps. */
export interface RecoveredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

/** One Ready's worth of durable state. */
export interface PersistBatch {
  /** A snapshot received from the leader; it replaces the whole log up to its index. */
  readonly snapshot: Snapshot | null;
  /** New entries; an entry at index i replaces the stored entry at i and everything after it. */
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

/** Durable Raft state of one node. All methods resolve only once the data is synced. */
export interface RaftStorage {
  /** Takes the dataDir lock and recovers; throws with file and offset on corruption. */
  open(): Promise<RecoveredState>;
  /** Persists snapshot, then entries, then hard state, with one sync for the whole batch (group commit). */
  persist(batch: PersistBatch): Promise<void>;
  /**
   * Writes the image of a snapshot taken by the local state machine durably, alongside persist() calls rather than
   * queued behind or ahead of them: a large image takes tens of milliseconds to write and sync, and no Ready should
   * wait for that. It does not take effect until saveSnapshot() of the same snapshot. Optional: without it,
   * saveSnapshot() writes the image itself.
   */
  writeSnapshotImage?(snapshot: Snapshot): Promise<void>;
  /** Stores a snapshot taken by the local state machine and drops log segments wholly covered by it. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}
