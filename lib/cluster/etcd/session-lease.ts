/**
 * One etcd lease kept alive by our own loop on the monotonic clock. etcd3's autoKeepAlive is not used: it reports a
 * lost lease only after 2·TTL on Date.now, far later than etcd may have expired it and handed our keys to others.
 *
 * Why `validUntil` is safe: etcd expires a lease no earlier than TTL after it processed the last keepalive (and an etcd
 * leader change only extends leases), and it processed that keepalive after we sent it. So the lease surely lives until
 * send time + TTL, minus a margin for clock-rate drift and timer lateness.
 */
import type { Etcd3, ILeaseKeepAliveResponse } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Clock, TimerHandle, Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { callOptions, toClusterError } from './etcd-client.js';
import { keepaliveOnce } from './lease-keepalive.js';

export interface SessionLeaseDeps {
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  /** Subtracted from every TTL: how much sooner than etcd we give the lease up. */
  readonly marginMs: number;
  readonly requestTimeoutMs: number;
}

export class SessionLease {
  private until: number;
  private lapsed = false;
  private stopped = false;
  private keepaliveTimer: TimerHandle | null = null;
  private lapseTimer: TimerHandle | null = null;
  /** Ends the keepalive in flight (its stream and guard timer), so nothing of a halted lease outlives it. */
  private endInflight: (() => void) | null = null;
  private readonly lapseListeners = new Set<() => void>();
  private failures = 0;
  private readonly marginMs: number;

  private constructor(
    private readonly client: Etcd3,
    /** Lease id (decimal string, as etcd3 gives it). */
    readonly id: string,
    /** The TTL etcd granted (it raises TTLs below its minimum). */
    readonly ttlS: number,
    grantSentAt: number,
    private readonly d: SessionLeaseDeps,
  ) {
    this.marginMs = Math.min(d.marginMs, (ttlS * 1000) / 2);
    this.until = grantSentAt + ttlS * 1000 - this.marginMs;
    this.armLapseTimer();
    this.scheduleKeepalive(grantSentAt + this.periodMs);
  }

  static async grant(client: Etcd3, ttlS: number, d: SessionLeaseDeps): Promise<SessionLease> {
    const sentAt = d.clock.now();
    let res;
    try {
      res = await client.leaseClient.leaseGrant({ TTL: ttlS, ID: 0 }, callOptions(d.requestTimeoutMs));
    } catch (e) {
      throw toClusterError(e, 'granting a session lease');
    }
    if (res.error) throw new Error(`etcd refused a ${ttlS} s lease: ${res.error}`);
    const granted = Number(res.TTL);
    if (!(granted > 0)) throw new Error(`etcd granted lease ${res.ID} with TTL ${res.TTL}`);
    return new SessionLease(client, res.ID, granted, sentAt, d);
  }

  /** Local monotonic ms until which the lease surely lives: grant/keepalive send time + TTL − margin. */
  get validUntil(): number {
    return this.until;
  }

  valid(): boolean {
    return !this.lapsed && this.d.clock.now() < this.until;
  }

  /** Called once when the lease lapses locally (validUntil passed without a renewal, or etcd said it is gone). */
  onLapse(fn: () => void): () => void {
    if (this.lapsed) {
      this.d.timers.setImmediate(() => this.call(fn));
      return () => {};
    }
    this.lapseListeners.add(fn);
    return () => this.lapseListeners.delete(fn);
  }

  /** Best effort: stops keepalives and asks etcd to drop the lease (and with it every key under it). */
  async revoke(): Promise<void> {
    const wasLapsed = this.lapsed;
    this.halt();
    this.lapsed = true;
    this.lapseListeners.clear();
    try {
      await this.client.leaseClient.leaseRevoke({ ID: this.id }, callOptions(this.d.requestTimeoutMs));
    } catch (e) {
      // Not found: already expired. Anything else: it expires by itself within the TTL.
      if (!(e instanceof EtcdLeaseInvalidError) && !wasLapsed) {
        this.d.logger.debug?.(`revoking etcd lease ${this.id} failed (it expires within ${this.ttlS} s): ${(e as Error).message}`);
      }
    }
  }

  /** Stops keepalives and timers without revoking: the lease expires in etcd (a crash, for tests). */
  abandon(): void {
    this.halt();
    this.lapseListeners.clear();
  }

  private get periodMs(): number {
    return (this.ttlS * 1000) / 3;
  }

  private halt(): void {
    this.stopped = true;
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = null;
    this.lapseTimer?.cancel();
    this.lapseTimer = null;
    this.endInflight?.();
  }

  private scheduleKeepalive(at: number): void {
    if (this.stopped || this.lapsed) return;
    this.keepaliveTimer = this.d.timers.setTimeout(() => void this.keepalive(), Math.max(0, at - this.d.clock.now()));
  }

  private async keepalive(): Promise<void> {
    this.keepaliveTimer = null;
    if (this.stopped || this.lapsed) return;
    const sentAt = this.d.clock.now();
    let res: ILeaseKeepAliveResponse;
    try {
      res = await this.keepaliveOnce();
    } catch (e) {
      if (this.stopped || this.lapsed) return;
      if (e instanceof EtcdLeaseInvalidError) return this.lapse(`etcd no longer knows lease ${this.id}`);
      if (this.failures++ === 0) {
        this.d.logger.warn(`renewing etcd session lease ${this.id} failed, retrying: ${toClusterError(e, 'lease keepalive').message}`);
      }
      // Retry soon: the lease has only until validUntil, and the next call may pick a healthy endpoint.
      const backoff = Math.min(this.periodMs, 100 * 2 ** Math.min(this.failures - 1, 5));
      return this.scheduleKeepalive(this.d.clock.now() + backoff);
    }
    if (this.stopped || this.lapsed) return;
    const ttl = Number(res.TTL);
    if (!(ttl > 0)) return this.lapse(`etcd says lease ${this.id} expired`);
    // An answer that arrives after validUntil must not revive the lease: valid() already said no.
    if (this.d.clock.now() >= this.until) return this.lapse(`lease ${this.id} renewal came back too late`);
    if (this.failures > 0) this.d.logger.log(`etcd session lease ${this.id} renewed again`);
    this.failures = 0;
    this.until = Math.max(this.until, sentAt + ttl * 1000 - this.marginMs);
    this.armLapseTimer();
    this.scheduleKeepalive(sentAt + this.periodMs);
  }

  /** One keepalive on its own stream, with a deadline of a third of the TTL; halting the lease ends it at once. */
  private async keepaliveOnce(): Promise<ILeaseKeepAliveResponse> {
    const k = await keepaliveOnce(this.client, this.id, this.periodMs, this.d.timers, () => new Error('lease keepalive: no answer in time'));
    const halted = () => k.end(new Error('lease keepalive: the lease was halted'));
    if (this.stopped) halted();
    else this.endInflight = halted;
    try {
      return await k.answer;
    } finally {
      this.endInflight = null;
    }
  }

  private armLapseTimer(): void {
    this.lapseTimer?.cancel();
    if (this.stopped || this.lapsed) return;
    this.lapseTimer = this.d.timers.setTimeout(() => {
      this.lapseTimer = null;
      // Timers may fire early by a fraction of a ms: re-arm until the clock agrees.
      if (this.d.clock.now() >= this.until) this.lapse(`etcd session lease ${this.id} was not renewed in time`);
      else this.armLapseTimer();
    }, Math.max(0, this.until - this.d.clock.now()));
  }

  private lapse(why: string): void {
    if (this.lapsed || this.stopped) return;
    this.lapsed = true;
    this.halt();
    this.d.logger.warn(why);
    const fns = [...this.lapseListeners];
    this.lapseListeners.clear();
    for (const fn of fns) this.call(fn);
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.d.logger.error(`a session lease listener threw: ${(e as Error).message}`);
    }
  }
}
