import type { Membership } from './membership.js';

/** A member's id as written in `members` ('node1'). The empty string means "nobody". */
export type NodeId = string;
export const NONE: NodeId = '';

/** One log entry. Empty `data` is the no-op a new leader appends to commit entries of earlier terms. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly data: Uint8Array;
}

/** What must survive a crash besides the log: Raft's persistent state (Figure 2) plus the commit index. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export interface SnapshotMeta {
  /** Last log index the image covers. */
  readonly index: number;
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly membership: Membership;
}

/** A state machine image; `data` is opaque to the core. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}
