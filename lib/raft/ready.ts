import type { Message } from './message.js';
import type { ReadState, Role } from './raft.js';
import type { Entry, HardState, NodeId, Snapshot } from './types.js';

/** Volatile state worth telling the application about when it changes. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
  readonly term: number;
}

/**
 * One batch of work for the caller, in this order:
 * 1. persist `snapshot`, `entries` and `hardState` (with fsync when `mustSync`);
 * 2. send `messages` — only after step 1, since they may acknowledge what it persisted;
 * 3. apply `snapshot`, then `committedEntries`; serve `readStates` once applied up to their index;
 * 4. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /** False when only the commit index changed: it can be rebuilt after a crash, so no fsync is owed. */
  readonly mustSync: boolean;
}
