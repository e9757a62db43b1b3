import type { Entry } from '../../raft/index.js';
import { decodeImage, decodePayload, encodeImage } from './entry-codec.js';
import { EventLogModule } from './event-log-module.js';
import { KvModule } from './kv-module.js';
import { LockModule } from './lock-module.js';
import { SESSION_EXPIRED, SessionTable } from './session-table.js';
import type { StateModule } from './state-module.js';
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

/** KV pairs per encoded slice: about 1–3 ms of encoding each. */
const SLICE = 2048;

/** A command that failed identically on every node (unknown module, a duplicate past the session window). */
export class ApplyError {
  constructor(readonly message: string) {}
}

/**
 * The replicated state: modules by name (kv, events, locks, the task ledger) plus client sessions.
 * A bad entry yields an ApplyError result rather than an exception, since an exception would stop every node at the
 * same entry.
 */
export class ClusterStateMachine implements StateMachine {
  readonly kv = new KvModule();
  readonly events = new EventLogModule();
  readonly locks: LockModule;
  readonly tasks = new TaskLedgerModule();
  readonly sessions = new SessionTable();
  private readonly modules = new Map<string, StateModule>();
  appliedIndex = 0;

  /** `locks` is replaceable for the simulator's checker self-test. */
  constructor(extra: readonly StateModule[] = [], locks: LockModule = new LockModule()) {
    this.locks = locks;
    for (const m of [this.kv, this.events, this.locks, this.tasks, ...extra]) this.modules.set(m.name, m);
  }

  apply(entry: Entry): unknown {
    this.appliedIndex = entry.index;
    if (entry.data.length === 0) return undefined; // a leader's no-op
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
    const { head, pairs } = this.capture();
    const slices: Uint8Array[] = [];
    for (let i = 0; i < pairs.length; i += SLICE) slices.push(encodeImage(pairs.slice(i, i + SLICE)));
    return encodeImage([head, ...slices]);
  }

  async snapshotInSlices(pause: () => Promise<void>): Promise<Uint8Array> {
    const { head, pairs } = this.capture();
    const slices: Uint8Array[] = [];
    for (let i = 0; i < pairs.length; i += SLICE) {
      await pause();
      slices.push(encodeImage(pairs.slice(i, i + SLICE)));
    }
    return encodeImage([head, ...slices]);
  }

  /**
   * Image: `[head, ...kvSlices]`. The head (every module but kv, sessions, applied index) is encoded at once, since
   * those modules change their objects in place; the kv pairs are only copied, because a write replaces an entry
   * object rather than changing it, so the copy stays the state of this moment while it is encoded later.
   */
  private capture(): { head: Uint8Array; pairs: unknown[] } {
    const modules: Record<string, unknown> = {};
    for (const [name, m] of this.modules) if (m !== this.kv) modules[name] = m.snapshot();
    const head = encodeImage({ appliedIndex: this.appliedIndex, modules, sessions: this.sessions.snapshot() });
    return { head, pairs: this.kv.snapshot() as unknown[] };
  }

  restore(data: Uint8Array): void {
    const [headBytes, ...slices] = decodeImage(data) as Uint8Array[];
    const image = decodeImage(headBytes!) as { appliedIndex: number; modules: Record<string, unknown>; sessions: unknown };
    this.appliedIndex = image.appliedIndex;
    for (const [name, m] of this.modules) if (m !== this.kv) m.restore(image.modules[name] ?? []);
    this.kv.restore(slices.flatMap((b) => decodeImage(b) as unknown[]));
    this.sessions.restore(image.sessions ?? []);
  }
}
