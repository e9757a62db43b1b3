/** The reading half of the etcd election: election.ts campaigns and leads, this follows who leads. */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Clock, TimerHandle, Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { callOptions } from './etcd-client.js';
import type { ElectionValue } from './election.js';
import { BACKOFF_FIRST_MS, backoff, Outage, sleep } from './etcd-retry.js';
import { revisionOf } from './keys.js';

export interface ObservedLeader {
  /** null: no candidate, or a key that is not an election value. */
  readonly value: ElectionValue | null;
  readonly term: number;
  /** Create revision of the lowest key; null when there is none. */
  readonly firstRev: number | null;
  /** The etcd revision the view was read at. */
  readonly header: number;
}

/**
 * Who leads, as every node sees it: the lowest create revision under the election prefix. A watch on the prefix makes
 * changes show at once; a poll every TTL/3 keeps the view honest when the watch hangs on an etcd member that stopped
 * answering. No successful read for a TTL: the leader is unknown.
 */
export class LeaderObserver {
  private view: ObservedLeader = { value: null, term: 0, firstRev: null, header: 0 };
  private lastOkAt = -Infinity;
  private watcher: Watcher | null = null;
  private pollTimer: TimerHandle | null = null;
  private rewatchTimer: TimerHandle | null = null;
  private longestTtl: number | undefined;
  private reading = false;
  private again = false;
  private readonly stopper = new AbortController();
  private readonly outage: Outage;

  constructor(
    private readonly d: {
      readonly client: Etcd3;
      readonly prefix: string;
      readonly clock: Clock;
      readonly timers: Timers;
      readonly logger: ClusterLogger;
      readonly requestTimeoutMs: number;
      readonly ttlMs: number;
      readonly onChange: () => void;
    },
  ) {
    this.outage = new Outage(d.logger, 'observing the etcd election');
  }

  /** Resolves with the first view (retrying while etcd does not answer), or when stopped first. */
  async start(): Promise<void> {
    for (let failures = 0; !this.stopper.signal.aborted; failures++) {
      try {
        await this.readOnce();
        this.outage.ok();
        break;
      } catch (e) {
        this.outage.failed(e, 'reading the election');
        await sleep(this.d.timers, backoff(failures), this.stopper.signal);
      }
    }
    if (this.stopper.signal.aborted) return;
    this.watch();
    this.schedulePoll();
  }

  /** The leader as last read, or null when no read succeeded for a TTL. */
  current(): ObservedLeader | null {
    return this.d.clock.now() - this.lastOkAt > this.d.ttlMs ? null : this.view;
  }

  /**
   * The longest session TTL (ms) written into any leader value read so far (undefined: none carried one). A key that
   * vanished just before this node campaigned was most likely one of these leaders (see EtcdElection.takeoverWaitMs).
   */
  get longestTtlMs(): number | undefined {
    return this.longestTtl;
  }

  /** The last term seen, even when the view is stale. */
  get lastTerm(): number {
    return this.view.term;
  }

  stop(): void {
    this.stopper.abort();
    this.pollTimer?.cancel();
    this.pollTimer = null;
    this.rewatchTimer?.cancel();
    this.rewatchTimer = null;
    const w = this.watcher;
    this.watcher = null;
    if (w) void w.cancel().catch(() => undefined);
  }

  private async readOnce(): Promise<void> {
    const sentAt = this.d.clock.now();
    const r = await this.d.client
      .getAll()
      .prefix(this.d.prefix)
      .sort('Create', 'Ascend')
      .limit(1)
      .options(callOptions(this.d.requestTimeoutMs))
      .exec();
    const header = revisionOf(r.header.revision);
    this.lastOkAt = Math.max(this.lastOkAt, sentAt);
    if (header < this.view.header) return; // an older answer overtaken by a newer one
    const kv = r.kvs[0];
    if (!kv) this.view = { value: null, term: this.view.term, firstRev: null, header };
    else {
      const value = parseValue(kv);
      if (value?.ttlMs !== undefined) this.longestTtl = Math.max(this.longestTtl ?? 0, value.ttlMs);
      this.view = { value, term: revisionOf(kv.create_revision), firstRev: revisionOf(kv.create_revision), header };
    }
  }

  /** Reads again, one read at a time; changes during a read cause one more. */
  private refresh(): void {
    if (this.stopper.signal.aborted) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    this.readOnce()
      .then(
        () => this.outage.ok(),
        (e: unknown) => this.outage.failed(e, 'reading the election'),
      )
      .finally(() => {
        this.reading = false;
        if (this.stopper.signal.aborted) return;
        this.d.onChange();
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      });
  }

  private schedulePoll(): void {
    if (this.stopper.signal.aborted) return;
    this.pollTimer = this.d.timers.setTimeout(() => {
      this.refresh();
      this.d.onChange(); // staleness is judged on the clock: re-evaluate even while reads fail
      this.schedulePoll();
    }, this.d.ttlMs / 3);
  }

  private watch(): void {
    if (this.stopper.signal.aborted) return;
    const w = this.d.client.watch().prefix(this.d.prefix).startRevision(String(this.view.header + 1)).watcher();
    this.watcher = w;
    w.on('put', () => this.refresh());
    w.on('delete', () => this.refresh());
    w.on('connected', () => this.refresh());
    w.on('error', () => {
      // The watch was cancelled (history compacted past our revision…): the poll covers the gap; watch anew.
      if (this.watcher !== w) return;
      void w.cancel().catch(() => undefined);
      this.refresh();
      // Tracked so stop() cancels it: a re-watch after stop would open a watcher nobody closes.
      this.rewatchTimer?.cancel();
      this.rewatchTimer = this.d.timers.setTimeout(() => {
        this.rewatchTimer = null;
        if (this.watcher === w) this.watch();
      }, BACKOFF_FIRST_MS);
    });
  }
}

/** An election value, or null when the key holds something else. `ttlMs` is absent in values of older versions. */
export function parseValue(kv: IKeyValue): ElectionValue | null {
  try {
    const v = JSON.parse(kv.value.toString()) as Partial<Record<keyof ElectionValue, unknown>>;
    if (typeof v.id === 'string' && typeof v.address === 'string' && typeof v.clientId === 'string') {
      const ttlMs = typeof v.ttlMs === 'number' && Number.isFinite(v.ttlMs) && v.ttlMs > 0 ? v.ttlMs : undefined;
      return { id: v.id, address: v.address, clientId: v.clientId, ...(ttlMs === undefined ? {} : { ttlMs }) };
    }
  } catch {
    // falls through: not ours
  }
  return null;
}
