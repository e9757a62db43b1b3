import type { RaftConfig } from './config.js';
import type { Message } from './message.js';
import { EMPTY_STATE, Raft, type InitialState } from './raft.js';
import type { Ready, SoftState } from './ready.js';
import { EMPTY_HARD_STATE, type HardState, type NodeId, type Snapshot } from './types.js';

export type RaftConstructor = new (config: RaftConfig, state: InitialState) => Raft;

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: string;
}

export interface RaftStatus extends SoftState {
  readonly id: NodeId;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly leaseValid: boolean;
  /** Only on the leader. */
  readonly peers: readonly PeerStatus[];
}

/**
 * The core's public face, like etcd's RawNode: inputs go in through tick/step/propose/readIndex/transferLeader, work
 * comes out as Ready batches, one at a time: after ready(), no new Ready is produced until advance().
 */
export class RaftNode {
  readonly core: Raft;
  private prevHard: HardState;
  private prevSoft: SoftState;
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig, state: InitialState = EMPTY_STATE, Core: RaftConstructor = Raft) {
    this.core = new Core(config, state);
    this.prevHard = state.hardState ?? EMPTY_HARD_STATE;
    this.prevSoft = this.softState();
  }

  get id(): NodeId {
    return this.core.id;
  }

  tick(): void {
    this.core.tick();
  }

  step(m: Message): void {
    if (m.to !== this.core.id) return;
    this.core.step(m);
  }

  propose(data: readonly Uint8Array[]): { term: number; index: number } | null {
    return this.core.propose(data);
  }

  readIndex(context: string): boolean {
    return this.core.readIndex(context);
  }

  transferLeader(to: NodeId): boolean {
    return this.core.transferLeader(to);
  }

  campaign(): void {
    this.core.campaign();
  }

  compact(snapshot: Snapshot): void {
    this.core.compact(snapshot);
  }

  hasValidLease(): boolean {
    return this.core.hasValidLease();
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    const c = this.core;
    // Asked after every message: compared field by field rather than through hardState()/softState(), which allocate.
    const hard = this.prevHard;
    const soft = this.prevSoft;
    return (
      c.msgs.length > 0 ||
      c.readStates.length > 0 ||
      c.pendingSnapshot !== null ||
      c.log.stableIndex < c.log.lastIndex() ||
      c.log.hasNextCommitted() ||
      c.term !== hard.term ||
      c.vote !== hard.vote ||
      c.log.committed !== hard.commit ||
      c.lead !== soft.leader ||
      c.role !== soft.role ||
      c.term !== soft.term
    );
  }

  ready(): Ready {
    if (this.outstanding) throw new Error('ready() called before advance() of the previous Ready');
    const c = this.core;
    const hard = c.hardState();
    const soft = this.softState();
    const entries = c.log.unstableEntries();
    const hardChanged = !sameHard(hard, this.prevHard);
    const rd: Ready = {
      softState: sameSoft(soft, this.prevSoft) ? null : soft,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot: c.pendingSnapshot,
      committedEntries: c.log.nextCommitted(),
      messages: c.msgs,
      readStates: c.readStates,
      mustSync: entries.length > 0 || c.pendingSnapshot !== null || hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote,
    };
    c.msgs = [];
    c.readStates = [];
    this.prevSoft = soft;
    this.outstanding = rd;
    return rd;
  }

  /** The caller has persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new Error('advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    const c = this.core;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot) {
      if (c.pendingSnapshot === rd.snapshot) c.pendingSnapshot = null;
      c.log.appliedTo(rd.snapshot.meta.index);
    }
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last) c.log.appliedTo(last.index);
    const lastNew = rd.entries[rd.entries.length - 1];
    if (lastNew) c.entriesStable(lastNew.index, lastNew.term);
  }

  status(): RaftStatus {
    const c = this.core;
    const peers: PeerStatus[] = [];
    if (c.role === 'leader') {
      for (const [id, pr] of c.prs) peers.push({ id, match: pr.match, next: pr.next, state: pr.state });
    }
    return {
      ...this.softState(),
      id: c.id,
      vote: c.vote,
      commit: c.log.committed,
      applied: c.log.applied,
      lastIndex: c.log.lastIndex(),
      snapshotIndex: c.log.snapshotIndex(),
      leaseValid: c.hasValidLease(),
      peers,
    };
  }

  private softState(): SoftState {
    return { leader: this.core.lead, role: this.core.role, term: this.core.term };
  }
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role && a.term === b.term;
}
