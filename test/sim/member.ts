import type { Entry, RaftNode, SoftState } from '../../lib/raft/index.js';
import type { KvInput, KvOutput } from './kv-model.js';

/** What the harness needs from a simulated member, whether it runs the bare core or the whole runtime. */
export interface SimMember {
  readonly id: string;
  readonly alive: boolean;
  /** The live core, for invariant checks; null while crashed or starting. */
  readonly raft: RaftNode | null;
  /** What this member's state machine reflects. */
  readonly appliedIndex: number;
  /** Last index and term surely on disk: what it would vote with after a crash. */
  durableLast(): { index: number; term: number };
  /** Why the member could not start after its last boot (e.g. storage refused to recover), or null. */
  readonly startFailure: string | null;
  /** Lease check as the member itself would answer it. */
  hasValidLease(): boolean;
  boot(): void;
  /** Power cut; with `afterSync` a Ready being written made it to disk but none of its messages left. */
  crash(afterSync?: boolean): void;
  transferLeader(to: string): void;
  /**
   * Starts a client command. `done` gets the output, or null when the outcome is unknown. Returns false when the
   * member refused at once (then the command surely never happened).
   */
  submit(input: KvInput, client: number, op: number, timeoutMs: number, done: (out: KvOutput | null) => void): boolean;
}

export interface MemberHooks {
  applied(member: SimMember, entry: Entry): void;
  softState(member: SimMember, s: SoftState): void;
}
