/** Facts about the entry being applied; identical on every node, so modules stay deterministic. */
export interface ApplyContext {
  readonly index: number;
  readonly term: number;
  /** Wall-clock ms the proposer wrote into the entry: the only clock replicated state may use (lock TTLs). */
  readonly time: number;
}

/**
 * One part of the replicated state (kv, locks, events, task ledger). `apply` must be a pure function of the module's
 * state, the command and the context: every node applies the same entries and must reach the same state.
 */
export interface StateModule<Command = unknown, Result = unknown> {
  readonly name: string;
  apply(command: Command, ctx: ApplyContext): Result;
  /** A plain-data image for snapshots (encoded with msgpack). */
  snapshot(): unknown;
  restore(image: unknown): void;
}

/**
 * The rows of a bulk module as they were at one moment, read a slice at a time while entries keep applying.
 * `release()` once done drops what the capture holds.
 */
export interface RowCapture {
  readonly length: number;
  /** Rows `from` to `to` (exclusive), in the order rows() would have listed them. */
  slice(from: number, to: number): unknown[];
  release(): void;
}

/**
 * A module with many rows (kv pairs, kept events). `rows()` must return objects that later applies never change in
 * place (a write replaces a row), so the snapshot can encode them a slice at a time while entries keep applying.
 * `capture()`, when a module has it, stands in for rows() in snapshots: the same rows without building them all at
 * once, which for a large state stalls the event loop (200k kv pairs: ~45 ms plus the garbage collection after).
 */
export interface BulkStateModule<Command = unknown, Result = unknown> extends StateModule<Command, Result> {
  rows(): unknown[];
  capture?(): RowCapture;
  restore(image: unknown, rows?: unknown[]): void;
}
