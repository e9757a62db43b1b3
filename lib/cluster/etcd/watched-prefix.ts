import type { Etcd3, IEvent, IWatchResponse, Watcher } from 'etcd3';
import type { TimerHandle, Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { revisionOf } from './keys.js';

/** What a WatchedPrefix keeps up to date: a local copy of the keys under one prefix. */
export interface PrefixSink {
  /**
   * Brings the copy up to date with one linearizable read (at start, and after etcd compacted the history the watch
   * needed) and returns the revision it read at. It must tolerate having seen part of what it reads already.
   */
  read(): Promise<number>;
  /** Changes from one watch response, oldest first, all above the last revision read or applied. */
  apply(events: readonly IEvent[]): void;
}

export interface WatchedPrefixOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  /** What the prefix holds, for log lines ("task runs", "events"). */
  readonly what: string;
  readonly sink: PrefixSink;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly requestTimeoutMs: number;
  /** Watch puts only (the sink has no use for deletes). */
  readonly putsOnly?: boolean;
}

interface WatchFailure {
  readonly error: Error;
  /** The revision the failed watch started from. */
  readonly from: number;
}

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

/**
 * A range read of a prefix, then a watch from the revision after it, kept going across disconnects and compactions.
 *
 * Why not etcd3's own resume: after a disconnect it re-watches from the revision in the last response header, and
 * the header of a watch's `created` response (and of a catch-up batch etcd split) is etcd's current revision, not
 * the last change delivered — a disconnect at the wrong moment would skip changes. Here the revision moves only with
 * changes applied (or a read), the etcd3 watcher is dropped on a disconnect, and a new one starts after it. When etcd
 * has compacted that history away the watch is canceled, and the sink reads the prefix again instead.
 */
export class WatchedPrefix {
  private rev = 0;
  private watcher: Watcher | null = null;
  /** Bumped whenever a watcher is replaced: callbacks of an old one are ignored. */
  private generation = 0;
  private active = false;
  private retry: TimerHandle | null = null;
  private backoff = FIRST_BACKOFF_MS;
  private connecting: Promise<void> | null = null;
  private pending: WatchFailure | null = null;
  private abandonConnect: (() => void) | null = null;
  private reading = false;
  private readonly advanced = new Set<() => void>();

  constructor(private readonly o: WatchedPrefixOptions) {}

  /** The newest etcd revision whose changes under the prefix the sink has (0 before the first read). */
  get revision(): number {
    return this.rev;
  }

  /**
   * Reads and watches; after a stop it resumes from the revision reached, as after a disconnect. Throws when the
   * first read or watch fails (nothing is retried then).
   */
  async start(): Promise<void> {
    if (this.active) return;
    this.active = true;
    // What a stop cut short (the watch it abandoned) is not a failure to report now.
    this.pending = null;
    try {
      await this.connect(this.rev === 0, true);
      this.backoff = FIRST_BACKOFF_MS;
    } catch (e) {
      this.active = false;
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.active = false;
    this.pending = null;
    this.generation++;
    this.retry?.cancel();
    this.retry = null;
    this.abandonConnect?.();
    this.abandonConnect = null;
    await this.dropWatcher();
    await this.connecting?.catch(() => undefined);
    this.notify();
  }

  /**
   * Records that the copy is known to equal etcd's state at `rev` (a caller checked that nothing under the prefix
   * changed after the revision reached); `expected` is the revision that check started from.
   */
  advance(rev: number, expected: number): boolean {
    // A read under way replaces the copy with another revision's state: the check is void then.
    if (this.reading || this.rev !== expected || rev <= this.rev) return false;
    this.rev = rev;
    this.notify();
    return true;
  }

  /**
   * Resolves once the sink has revision `rev` (a write of this node's under the prefix has come back through the
   * watch), once the watch stops, or after `timeoutMs`. Never rejects: callers that wrote already report success.
   */
  reach(rev: number, timeoutMs: number): Promise<void> {
    if (this.rev >= rev || !this.active) return Promise.resolve();
    return new Promise((resolve) => {
      let off = (): void => undefined;
      const timer = this.o.timers.setTimeout(() => {
        off();
        resolve();
      }, timeoutMs);
      const check = (): void => {
        if (this.rev >= rev || !this.active) {
          timer.cancel();
          return resolve();
        }
        off = this.onAdvance(check);
      };
      check();
    });
  }

  /** Calls `fn` the next time the revision moves (or the watch stops), once. Returns a function that cancels it. */
  onAdvance(fn: () => void): () => void {
    this.advanced.add(fn);
    return () => this.advanced.delete(fn);
  }

  private notify(): void {
    const fns = [...this.advanced];
    this.advanced.clear();
    for (const fn of fns) fn();
  }

  /**
   * One connect loop at a time: it takes the pending failure (reading again when etcd compacted the history the
   * watch needed), then watches. A failure reported while a loop runs is left pending for it, or for the next loop.
   */
  private connect(read: boolean, throwFirst: boolean): Promise<void> {
    if (this.connecting) return this.connecting;
    const loop = this.connectLoop(read, throwFirst).finally(() => {
      this.connecting = null;
      if (this.pending && this.active) void this.connect(false, false).catch(() => undefined);
    });
    this.connecting = loop;
    return loop;
  }

  private async connectLoop(readFirst: boolean, throwFirst: boolean): Promise<void> {
    let read = readFirst;
    while (this.active) {
      const failure = this.pending;
      this.pending = null;
      if (failure) {
        if (await this.compactedPast(failure.from, failure.error)) read = true;
        else if (throwFirst) throw failure.error;
        else await this.pause(failure.error);
        if (!this.active) return;
      }
      const from = this.rev + 1;
      try {
        if (read) {
          this.reading = true;
          const at = await this.o.sink.read().finally(() => (this.reading = false));
          if (!this.active) return;
          read = false;
          if (at > this.rev) {
            this.rev = at;
            this.notify();
          }
        }
        await this.watchFrom(this.rev + 1);
        if (!this.pending) return;
      } catch (e) {
        this.pending = { error: e as Error, from };
      }
    }
  }

  private async pause(cause: Error): Promise<void> {
    this.o.logger.warn(`etcd watch on ${this.o.what} failed (${cause.message}); retrying in ${this.backoff} ms`);
    await new Promise<void>((resolve) => {
      const timer = this.o.timers.setTimeout(resolve, this.backoff);
      // stop() ends the wait at once, so the loop sees it is no longer active.
      this.retry = { cancel: () => (timer.cancel(), resolve()) };
    });
    this.retry = null;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  /** Resolves once etcd accepted the watch; later failures restart the connect loop. */
  private watchFrom(from: number): Promise<void> {
    const generation = ++this.generation;
    let builder = this.o.client.watch().prefix(this.o.prefix).startRevision(String(from));
    if (this.o.putsOnly) builder = builder.only('put');
    // watcher() rather than create(): handlers are in place before the first response can arrive.
    const w = builder.watcher();
    this.watcher = w;
    return new Promise<void>((resolve, reject) => {
      let connected = false;
      // stop() while etcd has not answered yet: nothing else would settle this.
      this.abandonConnect = () => reject(new Error(`the watch on ${this.o.what} was stopped`));
      const fail = (e: Error, canceledByEtcd: boolean) => {
        if (generation !== this.generation) return;
        this.generation++;
        this.watcher = null;
        this.abandonConnect = null;
        // A watcher etcd canceled is gone from etcd3's list already; canceling it again would wait forever.
        if (!canceledByEtcd) void w.cancel().catch(() => undefined);
        if (!connected) return reject(e);
        this.pending = { error: e, from: this.rev + 1 };
        void this.connect(false, false).catch(() => undefined);
      };
      w.on('connected', () => {
        if (generation !== this.generation) return;
        connected = true;
        this.abandonConnect = null;
        resolve();
      });
      w.on('data', (res: IWatchResponse) => {
        if (generation === this.generation) this.onData(res);
      });
      w.on('disconnected', (e: Error) => fail(e, false));
      w.on('error', (e: Error) => fail(e, true));
    });
  }

  private onData(res: IWatchResponse): void {
    if (res.events.length === 0) {
      // A progress notice: etcd sends those only to watchers that have everything up to the header's revision.
      const at = revisionOf(res.header.revision);
      if (at > this.rev) {
        this.rev = at;
        this.notify();
      }
      return;
    }
    const fresh = res.events.filter((ev) => revisionOf(ev.kv.mod_revision) > this.rev);
    if (fresh.length === 0) return;
    this.backoff = FIRST_BACKOFF_MS;
    this.o.sink.apply(fresh);
    // etcd never splits one revision's changes over two responses, so the last change's revision is complete.
    this.rev = Math.max(this.rev, revisionOf(fresh[fresh.length - 1]!.kv.mod_revision));
    this.notify();
  }

  /**
   * Whether the watch failed because etcd compacted the revision it starts from. etcd 3.4 cancels such a watch with
   * no reason given, so a cancel is checked with a read at that revision (refused as compacted then).
   */
  private async compactedPast(from: number, e: unknown): Promise<boolean> {
    const message = (e as Error).message ?? '';
    let compacted = /compacted/i.test(message);
    if (!compacted && /canceled/i.test(message)) {
      try {
        await this.o.client.get(this.o.prefix).revision(from).options({ deadline: Date.now() + this.o.requestTimeoutMs }).exec();
      } catch (probe) {
        compacted = /compacted/i.test((probe as Error).message ?? '');
      }
    }
    if (compacted) this.o.logger.warn(`etcd compacted its history past ${from - 1}; re-reading kept ${this.o.what}`);
    return compacted;
  }

  private async dropWatcher(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    if (!w) return;
    let timer: TimerHandle | null = null;
    // Canceling waits for etcd's answer; an unreachable etcd must not hold up a shutdown.
    await Promise.race([
      w.cancel().catch(() => undefined),
      new Promise<void>((resolve) => (timer = this.o.timers.setTimeout(resolve, this.o.requestTimeoutMs))),
    ]);
    (timer as TimerHandle | null)?.cancel();
  }
}
