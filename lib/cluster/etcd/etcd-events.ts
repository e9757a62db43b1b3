import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  type Etcd3,
  type IEvent,
  type IKeyValue,
} from 'etcd3';
import type { TimerHandle, Timers } from '../../io/clock.js';
import type { EventSource } from '../backend.js';
import { ProposalOutcomeUnknownError } from '../errors.js';
import type { ClusterLogger } from '../logger.js';
import { eventsAfter, type CommittedEvent } from '../state/event-log-module.js';
import { pack, unpack } from '../msgpack.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { WatchedPrefix } from './watched-prefix.js';

export interface EtcdEventsDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  /** Unique per process start: event keys are named by it, so two publishers never pick the same key. */
  readonly clientId: string;
  /** Events kept in etcd; the leader deletes older ones. */
  readonly retention: number;
  readonly requestTimeoutMs: number;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  /** True while this node leads with a valid lease: only then does it trim beyond retention. */
  readonly isLeader: () => boolean;
}

/** Events per range read when catching up. */
const READ_PAGE = 500;
/** Keys deleted per trim transaction: etcd refuses transactions of more than 128 operations by default. */
const TRIM_BATCH = 100;
const TRIM_EVERY_MS = 1_000;
const PUBLISH_ATTEMPTS = 3;

/**
 * Cluster events in etcd: one key per event (`events/e/<clientId>/<seq>`), never overwritten, so its create revision
 * is its index — the same on every node, strictly increasing in commit order. Each node reads the kept events after
 * its delivery cursor, then watches for new ones, and buffers them for EventDelivery until `forget` says they were
 * delivered. The leader keeps `retention` events and records the newest index it dropped (`events/evicted`), so a node
 * that was away longer sees one gap, as with the embedded event log.
 */
export class EtcdEvents {
  private seq = 0;
  /** Buffered events in index order; `first` is the position of the oldest still kept. */
  private kept: CommittedEvent[] = [];
  private first = 0;
  /** The highest index buffered (or the cursor a start began after): reads look above it. */
  private floor = 0;
  private evicted = 0;
  private readonly listeners: (() => void)[] = [];
  private readonly watch: WatchedPrefix;
  private trimTimer: TimerHandle | null = null;
  private trimming: Promise<void> | null = null;
  private running = false;

  /** What EventDelivery drains. */
  readonly source: EventSource;

  constructor(private readonly d: EtcdEventsDeps) {
    if (!Number.isInteger(d.retention) || d.retention < 0) throw new RangeError(`event retention must be a whole number >= 0, got ${d.retention}`);
    this.watch = new WatchedPrefix({
      client: d.client,
      // events/e/ and events/evicted, in one watch: the gap marker arrives in order with the events.
      prefix: d.keys.eventsEvicted.slice(0, d.keys.eventsEvicted.lastIndexOf('/') + 1),
      what: 'events',
      sink: { read: () => this.read(), apply: (evs) => this.apply(evs) },
      timers: d.timers,
      logger: d.logger,
      requestTimeoutMs: d.requestTimeoutMs,
      putsOnly: true,
    });
    const self = this;
    this.source = {
      get evictedUpTo() {
        return self.evicted;
      },
      after: (index) => this.after(index),
      onChange: (fn) => void this.listeners.push(fn),
    };
  }

  /** Newest etcd revision this watcher has processed. */
  get revision(): number {
    return this.watch.revision;
  }

  /**
   * Reads every kept event with an index above `after` (this node's delivery cursor) and the evicted marker, then
   * watches for new ones. A start after a stop resumes the watch where it stopped, as after a disconnect (reading
   * again only if etcd compacted that history); `after` then only raises the floor.
   */
  async start(after: number): Promise<void> {
    if (this.running) return;
    if (after > this.floor) {
      this.floor = after;
      this.forget(after);
    }
    await this.watch.start();
    this.running = true;
    this.scheduleTrim();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.trimTimer?.cancel();
    this.trimTimer = null;
    await this.trimming;
    await this.watch.stop();
  }

  /**
   * Publishes an event; resolves with its index once this node's copy holds it too, so this node's own handlers have
   * seen it by then, as on the embedded backend, where a publish resolves once applied here (bounded: a watch that
   * lags past requestTimeout does not hold the publisher).
   */
  async publish(name: string, payload: unknown): Promise<{ index: number }> {
    const r = await this.append(name, payload);
    await this.watch.reach(r.index, this.d.requestTimeoutMs);
    return r;
  }

  /**
   * Writes the event's key; resolves with its index. The key is created only if absent, so a retry after a lost
   * answer finds the first attempt's key and returns its index instead of publishing twice.
   */
  private async append(name: string, payload: unknown): Promise<{ index: number }> {
    const key = this.d.keys.event(this.d.clientId, ++this.seq);
    const value = Buffer.from(pack({ name, payload }));
    const c = this.d.client;
    let last: unknown;
    for (let attempt = 1; attempt <= PUBLISH_ATTEMPTS; attempt++) {
      try {
        const res = await c
          .if(key, 'Create', '==', 0)
          .then(c.put(key).value(value))
          .else(c.get(key))
          .options({ deadline: Date.now() + this.d.requestTimeoutMs })
          .commit();
        if (res.succeeded) return { index: revisionOf(res.header.revision) };
        const kv = res.responses[0]?.response_range?.kvs[0];
        if (!kv) throw new Error(`event key ${key} exists but could not be read back`);
        return { index: revisionOf(kv.create_revision) };
      } catch (e) {
        if (isRefusal(e)) throw e;
        last = e;
        if (attempt < PUBLISH_ATTEMPTS) await this.sleep(50 * attempt);
      }
    }
    throw new ProposalOutcomeUnknownError(`publishing event "${name}": no answer from etcd after ${PUBLISH_ATTEMPTS} attempts (${(last as Error).message}); it may or may not be published`);
  }

  /** Lets the buffer drop events up to `upTo` (the backend calls it with the delivery position). */
  forget(upTo: number): void {
    while (this.first < this.kept.length && this.kept[this.first]!.index <= upTo) this.first++;
    if (this.first > 1024 && this.first > this.kept.length / 2) {
      this.kept = this.kept.slice(this.first);
      this.first = 0;
    }
  }

  private after(index: number): CommittedEvent[] {
    return eventsAfter(this.kept, this.first, index);
  }

  /** Every kept event above the floor, in index order, in pages read at one revision; then the evicted marker. */
  private async read(): Promise<number> {
    const c = this.d.client;
    const deadline = () => ({ deadline: Date.now() + this.d.requestTimeoutMs });
    let at: number | undefined;
    let from = this.floor + 1;
    for (;;) {
      let range = c.getAll().prefix(this.d.keys.eventsPrefix).minModRevision(from).sort('Mod', 'Ascend').limit(READ_PAGE).options(deadline());
      if (at !== undefined) range = range.revision(at);
      const res = await range.exec();
      at ??= revisionOf(res.header.revision);
      for (const kv of res.kvs) this.add(kv);
      if (!res.more || res.kvs.length === 0) break;
      from = revisionOf(res.kvs[res.kvs.length - 1]!.mod_revision) + 1;
    }
    const marker = await c.get(this.d.keys.eventsEvicted).revision(at).options(deadline()).exec();
    this.setEvicted(marker.kvs[0]);
    this.changed();
    return at;
  }

  private apply(events: readonly IEvent[]): void {
    for (const ev of events) {
      if (ev.kv.key.toString() === this.d.keys.eventsEvicted) this.setEvicted(ev.kv);
      else this.add(ev.kv);
    }
    this.changed();
  }

  private add(kv: IKeyValue): void {
    const index = revisionOf(kv.create_revision);
    if (index <= this.floor) return;
    let decoded: { name?: unknown; payload?: unknown };
    try {
      decoded = unpack(kv.value) as { name?: unknown; payload?: unknown };
    } catch (e) {
      decoded = {};
      this.d.logger.warn(`event ${kv.key.toString()} could not be decoded (${(e as Error).message}); skipped`);
    }
    this.floor = index;
    if (typeof decoded?.name !== 'string') return;
    if (index > this.evicted) this.kept.push({ name: decoded.name, payload: decoded.payload, index });
  }

  private setEvicted(kv: IKeyValue | undefined): void {
    const upTo = kv ? Number(kv.value.toString()) : 0;
    if (!Number.isSafeInteger(upTo) || upTo <= this.evicted) return;
    this.evicted = upTo;
    this.forget(upTo);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  private scheduleTrim(): void {
    if (!this.running) return;
    this.trimTimer = this.d.timers.setTimeout(() => {
      this.trimTimer = null;
      this.trimming = this.trim()
        .catch((e: unknown) => this.d.logger.warn(`trimming cluster events in etcd failed (${(e as Error).message}); trying again in ${TRIM_EVERY_MS} ms`))
        .finally(() => {
          this.trimming = null;
          this.scheduleTrim();
        });
    }, TRIM_EVERY_MS);
  }

  /**
   * Deletes the oldest events beyond retention and records the newest index deleted, in one transaction per batch.
   * The marker's mod revision guards it: a deposed leader trimming at the same time cannot move the marker back.
   */
  private async trim(): Promise<void> {
    const c = this.d.client;
    const k = this.d.keys;
    while (this.running && this.d.isLeader()) {
      const opts = { deadline: Date.now() + this.d.requestTimeoutMs };
      const oldest = await c.getAll().prefix(k.eventsPrefix).sort('Create', 'Ascend').limit(TRIM_BATCH).options(opts).exec();
      // With a sort, etcd counts every key in the range, not just the page.
      const excess = Number(oldest.count) - this.d.retention;
      if (excess <= 0) return;
      const doomed = oldest.kvs.slice(0, Math.min(excess, TRIM_BATCH));
      const marker = (await c.get(k.eventsEvicted).revision(oldest.header.revision).options(opts).exec()).kvs[0];
      const before = marker ? Number(marker.value.toString()) : 0;
      const upTo = Math.max(before, ...doomed.map((kv) => revisionOf(kv.create_revision)));
      if (!this.running || !this.d.isLeader()) return;
      const res = await c
        .if(k.eventsEvicted, 'Mod', '==', marker ? marker.mod_revision : 0)
        .then(...doomed.map((kv) => c.delete().key(kv.key)), c.put(k.eventsEvicted).value(String(upTo)))
        .options(opts)
        .commit();
      // Someone else moved the marker: look again on the next round.
      if (!res.succeeded) return;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.d.timers.setTimeout(resolve, ms));
  }
}

/** Errors that say the request was refused (so it surely did not apply, and a retry would be refused too). */
function isRefusal(e: unknown): boolean {
  return (
    e instanceof EtcdPermissionDeniedError ||
    e instanceof EtcdAuthenticationFailedError ||
    e instanceof GRPCInvalidArgumentError ||
    e instanceof ClientClosedError
  );
}
