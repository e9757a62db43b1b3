import type { Entry } from '../raft/types.js';
import { InvalidWriteError } from './errors.js';
import type { LogState } from './log-state.js';
import type { PersistBatch } from './raft-storage.js';

/**
 * Checks a batch against the log's rules before anything is written, and returns the entries worth writing (those
 * above the snapshot floor, which the rules would ignore anyway). Throws InvalidWriteError for a batch that would
 * leave a gap or install a snapshot that is not newer than the stored one.
 */
export function planBatch(log: LogState, snapshotIndex: number, batch: PersistBatch): readonly Entry[] {
  const snap = batch.snapshot;
  if (snap !== null && snap.meta.index <= snapshotIndex) {
    throw new InvalidWriteError(
      `snapshot at index ${snap.meta.index} is not newer than the stored snapshot at index ${snapshotIndex}`,
    );
  }
  const entries = batch.entries;
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1] as Entry;
    const cur = entries[i] as Entry;
    if (cur.index !== prev.index + 1) {
      throw new InvalidWriteError(`batch entries are not consecutive: ${prev.index} is followed by ${cur.index}`);
    }
  }
  let floor = log.floor;
  let last = log.lastIndex;
  if (snap !== null) {
    floor = snap.meta.index;
    last = log.markerKeeps(snap.meta.index, snap.meta.term) ? Math.max(last, floor) : floor;
  }
  const fresh = entries.length > 0 && (entries[0] as Entry).index <= floor ? entries.filter((e) => e.index > floor) : entries;
  const first = fresh[0];
  if (first !== undefined && first.index > last + 1) {
    throw new InvalidWriteError(`entry ${first.index} would leave a gap: the log ends at index ${last}`);
  }
  return fresh;
}
