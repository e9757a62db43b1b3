import { isMembershipEntry } from '../../raft/membership.js';
import type { Entry } from '../../raft/index.js';
import { ApplyError } from './apply-error.js';
import { decodeImage, decodePayload, ImageWriter } from './entry-codec.js';
import { EventLogModule } from './event-log-module.js';
import { KvModule } from './kv-module.js';
import { LockModule } from './lock-module.js';
import { SESSION_EXPIRED, SessionTable } from './session-table.js';
import type { BulkStateModule, RowCapture, StateModule } from './state-module.js';
import { TaskLedgerModule } from './task-ledger-module.js';

/** What the runtime applies committed entries to. */
export interface StateMachine {
  apply(entry: Entry): unknown;
  snapshot(): Uint8Array;
  /**
   * The same image as snapshot(), of the state at the moment of the call, encoded a slice at a time with `pause()`
   * between slices so a large state does not stall the event loop while entries keep applying.
   */
  snapshotInSlices(pause: () => Promise<void>): Promise<Uint8Array>;
  restore(data: Uint8Array): void;
}

export { ApplyError };

/**
 * Rows per encoded slice: about 0.2–0.5 ms of encoding each. A write's round trip crosses the event loop several
 * times and waits for one slice at each crossing, so the slice, not the whole image, sets what a snapshot adds to
 * an ack (2048 rows, 1–3 ms a slice, let a lone writer go 10–40 ms without one). The slice count is in the image's
 * head, so images sliced otherwise (earlier versions: 2048) restore the same.
 */
const SLICE = 256;

/** Options of the replicated state; every member must use the same. */
export interface StateMachineOptions {
  /** Newest cluster events kept in the state (and its snapshots) for nodes that fall behind. */
  readonly eventRetention?: number;
  /** Replacement modules, for the simulator's checker self-test. */
  readonly locks?: LockModule;
  readonly tasks?: TaskLedgerModule;
  readonly events?: EventLogModule;
}

/**
 * The replicated state: modules by name (kv, events, locks, the task ledger) plus client sessions.
 * A bad entry yields an ApplyError result rather than an exception, since an exception would stop every node at the
 * same entry.
 */
export class ClusterStateMachine implements StateMachine {
  readonly kv = new KvModule();
  readonly events: EventLogModule;
  readonly locks: LockModule;
  readonly tasks: TaskLedgerModule;
  readonly sessions = new SessionTable();
  private readonly modules = new Map<string, StateModule>();
  /** Modules whose rows are encoded in slices, in image order. */
  private readonly bulk: readonly BulkStateModule[];
  /** Size of the last image made or restored: about what the next one reserves. */
  private lastImageBytes = 0;
  appliedIndex = 0;
  /** Term of the last applied entry: the first entry of a newer term closes the runs its predecessors left open. */
  appliedTerm = 0;

  constructor(extra: readonly StateModule[] = [], options: StateMachineOptions = {}) {
    this.events = options.events ?? new EventLogModule(options.eventRetention);
    this.locks = options.locks ?? new LockModule();
    this.tasks = options.tasks ?? new TaskLedgerModule();
    this.bulk = [this.kv, this.events];
    for (const m of [this.kv, this.events, this.locks, this.tasks, ...extra]) this.modules.set(m.name, m);
  }

  apply(entry: Entry): unknown {
    this.appliedIndex = entry.index;
    if (entry.term > this.appliedTerm) {
      this.appliedTerm = entry.term;
      this.tasks.termBegins(entry.term);
    }
    // A leader's no-op, or a configuration change: the core and the runtime act on those.
    if (entry.data.length === 0 || isMembershipEntry(entry.data)) return undefined;
    let payload;
    try {
      payload = decodePayload(entry.data);
    } catch (e) {
      return new ApplyError(`entry ${entry.index}: ${(e as Error).message}`);
    }
    const module = this.modules.get(payload.module);
    if (!module) return new ApplyError(`entry ${entry.index}: no state module "${payload.module}"`);
    if (payload.session) {
      const seen = this.sessions.lookup(payload.session);
      if (seen === SESSION_EXPIRED) return new ApplyError(`entry ${entry.index}: retried after its session window`);
      if (seen !== undefined) return seen;
    }
    let result: unknown;
    try {
      result = module.apply(payload.command, { index: entry.index, term: entry.term, time: payload.time });
    } catch (e) {
      // A malformed command (sent by a member with the secret) throws the same way on every node: answer it with an
      // error instead of stopping the whole cluster at this entry.
      result = new ApplyError(`entry ${entry.index}: ${payload.module} command rejected: ${(e as Error).message}`);
    }
    if (payload.session) this.sessions.record(payload.session, entry.index, result);
    return result;
  }

  snapshot(): Uint8Array {
    const { image, rows } = this.capture();
    try {
      for (const r of rows) for (let i = 0; i < r.length; i += SLICE) image.add(r.slice(i, i + SLICE));
      return this.finished(image);
    } finally {
      for (const r of rows) r.release();
    }
  }

  async snapshotInSlices(pause: () => Promise<void>): Promise<Uint8Array> {
    const { image, rows } = this.capture();
    try {
      for (const r of rows) {
        for (let i = 0; i < r.length; i += SLICE) {
          await pause();
          image.add(r.slice(i, i + SLICE));
        }
      }
      return this.finished(image);
    } finally {
      for (const r of rows) r.release();
    }
  }

  /**
   * Image: `[head, ...slices]`. The head (every module's own image, sessions, applied index and term, and how many
   * slices each bulk module's rows take) is encoded at once, since those parts change in place; the bulk rows are
   * captured, to be encoded later: applies replace a row rather than change it, so what the capture reads stays the
   * state of this moment (a module with capture() copies nothing now; others copy their row list).
   */
  private capture(): { image: ImageWriter; rows: RowCapture[] } {
    const modules: Record<string, unknown> = {};
    for (const [name, m] of this.modules) modules[name] = m.snapshot();
    const rows = this.bulk.map((m) => m.capture?.() ?? copiedRows(m.rows()));
    try {
      const slices = rows.map((r) => Math.ceil(r.length / SLICE));
      const bulk = this.bulk.map((m, i) => [m.name, slices[i]!]);
      const image = new ImageWriter(1 + slices.reduce((a, b) => a + b, 0), this.lastImageBytes);
      image.add({ appliedIndex: this.appliedIndex, appliedTerm: this.appliedTerm, modules, sessions: this.sessions.snapshot(), bulk });
      return { image, rows };
    } catch (e) {
      for (const r of rows) r.release();
      throw e;
    }
  }

  private finished(image: ImageWriter): Uint8Array {
    const bytes = image.finish();
    this.lastImageBytes = bytes.byteLength;
    return bytes;
  }

  restore(data: Uint8Array): void {
    const [headBytes, ...slices] = decodeImage(data) as Uint8Array[];
    this.lastImageBytes = data.byteLength;
    const image = decodeImage(headBytes!) as {
      appliedIndex: number;
      appliedTerm?: number;
      modules: Record<string, unknown>;
      sessions: unknown;
      bulk?: [string, number][];
    };
    this.appliedIndex = image.appliedIndex;
    this.appliedTerm = image.appliedTerm ?? 0;
    // Images from before the bulk list held kv rows only.
    const counts = new Map(image.bulk ?? [['kv', slices.length]]);
    let next = 0;
    const rowsOf = new Map<string, unknown[]>();
    for (const m of this.bulk) {
      const n = counts.get(m.name) ?? 0;
      rowsOf.set(m.name, slices.slice(next, next + n).flatMap((b) => decodeImage(b) as unknown[]));
      next += n;
    }
    for (const [name, m] of this.modules) {
      const rows = rowsOf.get(name);
      if (rows) (m as BulkStateModule).restore(image.modules[name] ?? null, rows);
      else m.restore(image.modules[name] ?? []);
    }
    this.sessions.restore(image.sessions ?? []);
  }
}

/** A module's row list, copied at the capture, as a capture. */
function copiedRows(rows: unknown[]): RowCapture {
  return { length: rows.length, slice: (from, to) => rows.slice(from, to), release: () => undefined };
}
