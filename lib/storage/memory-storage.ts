import { EMPTY_HARD_STATE, type HardState, type Snapshot } from '../raft/types.js';
import { planBatch } from './batch-plan.js';
import { InvalidWriteError } from './errors.js';
import { LogState } from './log-state.js';
import type { PersistBatch, RaftStorage, RecoveredState } from './raft-storage.js';

/**
 * RaftStorage in memory, for unit tests: the same rules as FileStorage (log-state.ts, batch-plan.ts) without
 * files. Everything persisted survives close() and a later open(), as if synced; entry data is kept by reference.
 */
export class MemoryStorage implements RaftStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snapshot: Snapshot | null = null;
  private readonly log = new LogState({ withData: true, floor: 0, anchored: true });
  private isOpen = false;

  async open(): Promise<RecoveredState> {
    if (this.isOpen) throw new InvalidWriteError('storage is already open');
    this.isOpen = true;
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.log.entriesFrom(this.log.floor + 1) };
  }

  async persist(batch: PersistBatch): Promise<void> {
    this.checkOpen();
    const entries = planBatch(this.log, this.snapshot?.meta.index ?? 0, batch);
    if (batch.snapshot !== null) this.install(batch.snapshot);
    for (const e of entries) this.log.appendEntry(e.index, e.term, e.data);
    if (batch.hardState !== null) this.hardState = batch.hardState;
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.checkOpen();
    planBatch(this.log, this.snapshot?.meta.index ?? 0, { snapshot, entries: [], hardState: null });
    this.install(snapshot);
  }

  async close(): Promise<void> {
    this.isOpen = false;
  }

  private install(snapshot: Snapshot): void {
    this.log.applyMarker(snapshot.meta.index, this.log.markerKeeps(snapshot.meta.index, snapshot.meta.term));
    this.log.trimThrough(snapshot.meta.index);
    this.snapshot = snapshot;
  }

  private checkOpen(): void {
    if (!this.isOpen) throw new InvalidWriteError('storage is not open');
  }
}
