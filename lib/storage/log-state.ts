/**
 * The shape of the log as a sequence of writes makes it: the rules shared by WAL replay (file-storage.ts), the live
 * bookkeeping of FileStorage, and MemoryStorage, so the three can never disagree.
 *
 * Rules, applied in write order:
 * - Entry at index i, i <= floor: ignored (covered by a snapshot).
 * - Entry at index i otherwise: replaces the entry at i and drops everything after it ("last writer wins"); this
 *   is how a conflicting suffix is truncated without rewriting files. i may not lie past lastIndex + 1 (a gap).
 * - Snapshot (index M, term T), M > floor: if the log holds M with term T, the entries are kept (they match the
 *   snapshot up to M, so Raft's rule is to retain what follows) and the floor rises to M; otherwise the whole log
 *   is discarded and restarts right after M. The decision is taken when the snapshot is stored (`markerKeeps`) and
 *   recorded in the WAL's marker, since the entry it looks at may be compacted away before a replay. A snapshot at
 *   or below the floor changes nothing.
 *
 * Only terms are kept unless `withData` is set (replay and MemoryStorage need the entries; FileStorage's live view
 * only needs indexes and terms).
 */
export class LogState {
  /** Index of `terms[0]`. */
  private first = 0;
  private terms: number[] = [];
  private data: Uint8Array[] | null;
  /** Highest index known to be covered by a snapshot. */
  private floorIndex: number;
  /**
   * Whether the log's position is known: false only while replaying a WAL whose start was compacted away before
   * any marker is seen, when the first entry read starts the log wherever it is.
   */
  private anchored: boolean;

  constructor(options: { withData: boolean; floor: number; anchored: boolean }) {
    this.data = options.withData ? [] : null;
    this.floorIndex = options.floor;
    this.anchored = options.anchored;
  }

  get floor(): number {
    return this.floorIndex;
  }

  get isEmpty(): boolean {
    return this.terms.length === 0;
  }

  /** Index of the first held entry; meaningless when empty. */
  get firstIndex(): number {
    return this.first;
  }

  /** Index of the last held entry, or the floor when empty. */
  get lastIndex(): number {
    return this.terms.length === 0 ? this.floorIndex : this.first + this.terms.length - 1;
  }

  termAt(index: number): number | undefined {
    if (index < this.first || this.terms.length === 0) return undefined;
    return this.terms[index - this.first];
  }

  /** The index an entry must not exceed to be appended, or Infinity when any index may start the log. */
  get maxNextIndex(): number {
    return this.terms.length === 0 && !this.anchored ? Infinity : this.lastIndex + 1;
  }

  /** Applies an entry write. Returns false (and changes nothing) when it would leave a gap. */
  appendEntry(index: number, term: number, data?: Uint8Array): boolean {
    if (index <= this.floorIndex) return true;
    if (index > this.maxNextIndex) return false;
    if (this.terms.length === 0 || index < this.first) {
      this.first = index;
      this.terms.length = 0;
      if (this.data) this.data.length = 0;
    } else {
      this.terms.length = index - this.first;
      if (this.data) this.data.length = index - this.first;
    }
    this.terms.push(term);
    this.data?.push(data ?? EMPTY);
    return true;
  }

  /** Applies a snapshot at `index`, keeping the entries or discarding them as decided by `markerKeeps`. */
  applyMarker(index: number, keep: boolean): void {
    if (index <= this.floorIndex) return;
    this.floorIndex = index;
    if (keep) return; // the log's position is unchanged (and may still be unknown during replay)
    this.clear();
    this.anchored = true;
  }

  /**
   * Would a snapshot at (index, term) keep the current entries? Yes when the log holds `index` with `term`, or
   * when it starts right after `index` (what precedes was compacted away under an earlier snapshot decision).
   */
  markerKeeps(index: number, term: number): boolean {
    if (index <= this.floorIndex) return true;
    return this.termAt(index) === term || (this.terms.length > 0 && this.first === index + 1);
  }

  /** Drops entries at or below `index` (they are in a snapshot) to free memory; the rules are unaffected. */
  trimThrough(index: number): void {
    if (this.terms.length === 0 || index < this.first) return;
    const n = Math.min(index - this.first + 1, this.terms.length);
    this.terms.splice(0, n);
    this.data?.splice(0, n);
    this.first += n;
  }

  clear(): void {
    this.terms.length = 0;
    if (this.data) this.data.length = 0;
  }

  /** Entries from `from` to the end (requires `withData`). */
  entriesFrom(from: number): { term: number; index: number; data: Uint8Array }[] {
    if (!this.data) throw new Error('LogState holds no entry data');
    const out: { term: number; index: number; data: Uint8Array }[] = [];
    for (let i = Math.max(from, this.first) - this.first; i < this.terms.length; i++) {
      out.push({ term: this.terms[i] ?? 0, index: this.first + i, data: this.data[i] ?? EMPTY });
    }
    return out;
  }
}

const EMPTY = new Uint8Array(0);
