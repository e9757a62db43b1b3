import type { Entry, SnapshotMeta } from './types.js';

/**
 * The log as the core sees it: a snapshot base (index/term) followed by the entries kept in memory. The caller keeps
 * it short by compacting after each snapshot, so the whole tail stays in memory and no storage read is ever needed.
 * Entries above `stableIndex` have not been persisted yet and are handed out through Ready.
 */
export class RaftLog {
  private base: { index: number; term: number };
  private entries: Entry[];
  /** Highest index known to be on disk. */
  stableIndex: number;
  committed: number;
  /** Highest index handed to the application through Ready (applied once advance() is called). */
  applied: number;

  constructor(snapshot: SnapshotMeta | null, entries: readonly Entry[], committed: number) {
    this.base = { index: snapshot?.index ?? 0, term: snapshot?.term ?? 0 };
    this.entries = [...entries];
    if (this.entries.length > 0 && this.entries[0]!.index !== this.base.index + 1) {
      throw new Error(`log starts at ${this.entries[0]!.index}, expected ${this.base.index + 1}`);
    }
    this.stableIndex = this.lastIndex();
    this.committed = Math.max(committed, this.base.index);
    if (this.committed > this.lastIndex()) throw new Error(`commit ${committed} is past the last index ${this.lastIndex()}`);
    this.applied = this.base.index;
  }

  firstIndex(): number {
    return this.base.index + 1;
  }

  lastIndex(): number {
    return this.base.index + this.entries.length;
  }

  snapshotIndex(): number {
    return this.base.index;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** Term at `index`, or undefined when it is compacted away or past the end. */
  term(index: number): number | undefined {
    if (index === this.base.index) return this.base.term;
    if (index < this.base.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.base.index - 1]!.term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi), at least one, then as many as fit in `maxBytes`; undefined when lo is compacted. */
  slice(lo: number, hi: number, maxBytes = Infinity): Entry[] | undefined {
    if (lo <= this.base.index) return undefined;
    const end = Math.min(hi, this.lastIndex() + 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      const e = this.entries[i - this.base.index - 1]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Leader append: entries continue the log. */
  append(entries: readonly Entry[]): void {
    for (const e of entries) this.entries.push(e);
  }

  /**
   * Follower append (AppendEntries receiver rules 2-4): returns the index of the last new entry, or undefined when
   * the log does not contain an entry at prevIndex with prevTerm. A conflicting suffix is truncated.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (e.index <= this.base.index) continue; // already covered by our snapshot, hence committed and equal
      const ours = this.term(e.index);
      if (ours === e.term) continue;
      if (e.index <= this.committed) throw new Error(`entry ${e.index} conflicts with committed log (commit ${this.committed})`);
      this.truncateFrom(e.index);
      for (let j = k; j < entries.length; j++) this.entries.push(entries[j]!);
      break;
    }
    return lastNew;
  }

  private truncateFrom(index: number): void {
    this.entries.length = index - this.base.index - 1;
    this.stableIndex = Math.min(this.stableIndex, index - 1);
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`. A leader uses it with the follower's
   * hint to skip a whole term of mismatching entries per round trip; a follower uses it to build that hint.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.base.index; i--) {
      if (this.term(i)! <= term) return i;
    }
    return i; // at or below the snapshot base: terms there are unknown, so never answer above what was asked
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) throw new Error(`commit ${index} is past the last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries not yet on disk. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this.stableIndex - this.base.index);
  }

  /** Committed, persisted and not yet handed out. */
  nextCommitted(): Entry[] {
    const lo = Math.max(this.applied, this.base.index);
    const hi = Math.min(this.committed, this.stableIndex);
    if (hi <= lo) return [];
    return this.slice(lo + 1, hi + 1)!;
  }

  hasNextCommitted(): boolean {
    return Math.min(this.committed, this.stableIndex) > Math.max(this.applied, this.base.index);
  }

  /** Marks entries up to `index` durable, unless they were replaced since the Ready that carried them. */
  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index > this.stableIndex) this.stableIndex = index;
  }

  appliedTo(index: number): void {
    if (index > this.applied) this.applied = index;
  }

  /**
   * Replaces the whole log with a snapshot received from the leader. `applied` moves only when the Ready carrying the
   * snapshot is advanced: until then the application still holds its older state.
   */
  restore(meta: SnapshotMeta): void {
    this.base = { index: meta.index, term: meta.term };
    this.entries = [];
    this.stableIndex = meta.index;
    this.committed = meta.index;
  }

  /** Drops entries up to `index`, which a local snapshot now covers. */
  compact(index: number): void {
    if (index <= this.base.index) return;
    if (index > this.applied) throw new Error(`cannot compact to ${index}: only ${this.applied} is applied`);
    const term = this.term(index)!;
    this.entries = this.entries.slice(index - this.base.index);
    this.base = { index, term };
  }
}
