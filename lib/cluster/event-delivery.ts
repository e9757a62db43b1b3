import type { EventSource } from './backend.js';
import type { CommittedEvent } from './state/event-log-module.js';
import type { TimerHandle, Timers } from '../io/clock.js';
import type { ClusterLogger } from './logger.js';

/**
 * Events this node can no longer deliver: they were dropped from the replicated retention (`eventRetention`) before
 * this node handed them to its application — it was down, or cut off, for longer than the retention covers. Every
 * event with a log index in (after, upTo] that it had not delivered is lost to it; rebuild what depends on them.
 */
export interface EventGap {
  /** The last event index this node delivered before the gap. */
  readonly after: number;
  /** The newest event index dropped from retention. */
  readonly upTo: number;
}

/** Where committed events go on this node: the application's event bus. */
export interface EventSink {
  /** Called in log order. Returning counts as delivered. */
  deliver(event: CommittedEvent): void;
  /** Called once per gap, in order with the deliveries, before the first event after it. */
  missed(gap: EventGap): void;
}

/** Where this node remembers the last event it delivered (a file in the dataDir, or memory in tests). */
export interface DeliveryCursor {
  read(): Promise<number | null>;
  write(index: number): Promise<void>;
}

/** The cursor is saved at most this often: duplicates after a crash stay few, and delivery never waits for a disk. */
const SAVE_EVERY_MS = 50;

/**
 * Hands every committed cluster event to this node's application, in log order, at least once — across restarts,
 * snapshots taken before the application saw an event, snapshots installed from the leader, and events committed
 * before the application finished starting. The replicated state keeps the newest events (EventLogModule); the node
 * keeps a cursor: the index of the last event it delivered. Deliveries start after the cursor; the cursor is saved
 * after the events it covers were delivered, so a crash can repeat a few events but never skip one. Events dropped
 * from retention before this node delivered them become one EventGap notice.
 */
export class EventDelivery {
  private delivered = 0;
  private sink: EventSink | null = null;
  /** Set when the receiving side goes away (the application shutting down): nothing more counts as delivered. */
  private closed = false;
  private draining = false;
  private saved = 0;
  private saveTimer: TimerHandle | null = null;
  private saving: Promise<void> | null = null;

  constructor(
    private readonly events: EventSource,
    private readonly cursor: DeliveryCursor,
    private readonly timers: Timers,
    private readonly logger: ClusterLogger,
  ) {}

  /** Reads the cursor; call before the node applies anything. */
  async load(): Promise<void> {
    this.delivered = this.saved = (await this.cursor.read()) ?? 0;
    this.events.onChange(() => this.drain());
  }

  /** The index of the last event delivered (or, after a gap notice, given up on). */
  get position(): number {
    return this.delivered;
  }

  /** Starts delivering: everything after the cursor that is committed already, then each event as it applies. */
  start(sink: EventSink): void {
    if (this.sink) throw new Error('cluster events are already being delivered on this node; start delivery once');
    this.sink = sink;
    this.drain();
  }

  /**
   * Stops delivering: events applied from now on stay after the cursor and are delivered after the next start. Call
   * it before the receiving side stops listening (an event bus that has dropped its handlers would swallow events
   * that then count as delivered).
   */
  close(): void {
    this.closed = true;
  }

  /** Saves the cursor now (at shutdown). */
  async flush(): Promise<void> {
    this.saveTimer?.cancel();
    this.saveTimer = null;
    await this.saving;
    await this.save();
  }

  private drain(): void {
    const sink = this.sink;
    if (!sink || this.draining || this.closed) return;
    this.draining = true;
    try {
      if (this.delivered < this.events.evictedUpTo) {
        const gap = { after: this.delivered, upTo: this.events.evictedUpTo };
        this.delivered = gap.upTo;
        this.logger.warn(
          `cluster events after log index ${gap.after} up to ${gap.upTo} were dropped from retention before this node delivered them; ` +
            'the application is told once (EventGap / ClusterEventsMissed)',
        );
        this.tell(() => sink.missed(gap));
      }
      for (const e of this.events.after(this.delivered)) {
        this.delivered = e.index;
        this.tell(() => sink.deliver(e));
      }
    } finally {
      this.draining = false;
    }
    this.scheduleSave();
  }

  /** A handler's failure is the application's: it is logged, and delivery goes on in order. */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.logger.error(`delivering a cluster event failed: ${(e as Error).message}`);
    }
  }

  private scheduleSave(): void {
    if (this.saveTimer || this.delivered === this.saved) return;
    this.saveTimer = this.timers.setTimeout(() => {
      this.saveTimer = null;
      this.saving ??= this.save().finally(() => {
        this.saving = null;
        this.scheduleSave();
      });
    }, SAVE_EVERY_MS);
  }

  private async save(): Promise<void> {
    const upTo = this.delivered;
    if (upTo === this.saved) return;
    try {
      await this.cursor.write(upTo);
      this.saved = upTo;
    } catch (e) {
      // Only duplicates are at stake: the next save tries again.
      this.logger.warn(`could not save the event delivery cursor (${(e as Error).message}); events after ${this.saved} may be delivered again after a restart`);
    }
  }
}
