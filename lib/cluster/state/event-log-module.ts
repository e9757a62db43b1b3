import type { ApplyContext, BulkStateModule } from './state-module.js';

export interface EventCommand {
  /** The event's registered name (its class name unless the decorator says otherwise). */
  readonly name: string;
  readonly payload: unknown;
}

export interface CommittedEvent extends EventCommand {
  /** Log index of the entry: the same on every node, usable as an idempotency key. */
  readonly index: number;
}

/** Events every node keeps in its replicated state by default (`eventRetention`). */
export const DEFAULT_EVENT_RETENTION = 10_000;

/** The events of `kept[from..]` (in index order) with an index above `index`: a binary search, then one slice. */
export function eventsAfter(kept: readonly CommittedEvent[], from: number, index: number): CommittedEvent[] {
  let lo = from;
  let hi = kept.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (kept[mid]!.index <= index) lo = mid + 1;
    else hi = mid;
  }
  return kept.slice(lo);
}

/**
 * Cluster-wide events: publishing one is a log entry, so every node sees every event at the same log position, in
 * the same order. The newest `retention` events are kept in the replicated state and travel in snapshots, so a node
 * that restarts from a snapshot, or catches up by one from the leader, can still hand them to its application (see
 * EventDelivery). `evictedUpTo` is the index of the newest event no longer kept.
 *
 * Payloads are kept as decoded from the log and must not be changed: deliveries hand out copies.
 */
export class EventLogModule implements BulkStateModule<EventCommand, { index: number }> {
  readonly name = 'event';
  /** Oldest first; `first` is the position of the oldest kept (dropped ones are spliced off in batches). */
  private kept: CommittedEvent[] = [];
  private first = 0;
  private evicted = 0;
  private listener: (() => void) | null = null;

  constructor(private readonly retention = DEFAULT_EVENT_RETENTION) {
    if (!Number.isInteger(retention) || retention < 0) throw new RangeError(`event retention must be a whole number >= 0, got ${retention}`);
  }

  /** Index of the newest event that is no longer kept (0: none was dropped). */
  get evictedUpTo(): number {
    return this.evicted;
  }

  /** Called (on the apply path: keep it cheap) whenever events are added or the whole list is replaced by a restore. */
  onChange(fn: () => void): void {
    this.listener = fn;
  }

  /** Kept events with an index above `index`, oldest first. */
  after(index: number): CommittedEvent[] {
    return eventsAfter(this.kept, this.first, index);
  }

  apply(cmd: EventCommand, ctx: ApplyContext): { index: number } {
    if (typeof cmd !== 'object' || cmd === null || typeof cmd.name !== 'string') throw new TypeError('an event command needs a string name');
    this.kept.push({ name: cmd.name, payload: cmd.payload, index: ctx.index });
    if (this.kept.length - this.first > this.retention) {
      this.evicted = this.kept[this.kept.length - this.retention - 1]!.index;
      this.first = this.kept.length - this.retention;
      if (this.first > 1024 && this.first > this.kept.length / 2) {
        this.kept = this.kept.slice(this.first);
        this.first = 0;
      }
    }
    this.listener?.();
    return { index: ctx.index };
  }

  snapshot(): unknown {
    return this.evicted;
  }

  rows(): unknown[] {
    return this.kept.slice(this.first).map((e) => [e.index, e.name, e.payload]);
  }

  restore(image: unknown, rows: unknown[] = []): void {
    this.evicted = typeof image === 'number' ? image : 0;
    this.kept = (rows as [number, string, unknown][]).map(([index, name, payload]) => ({ index, name, payload }));
    this.first = 0;
    this.listener?.();
  }
}
