import type { Proposer } from './cluster-store.js';
import { ClusterStoppedError, NoLeaderException, ProposalOutcomeUnknownError } from './errors.js';
import type { Clock, TimerHandle, Timers } from '../io/clock.js';
import { LockLostException, LockTimeoutException } from './lock-errors.js';
import type { AcquireResult, LockCommand, LockModule } from './state/lock-module.js';

export interface LockAcquireOptions {
  /** Lease length in ms; the lock renews itself every ttl/3 while held. Default 10000. */
  readonly ttl?: number;
  /** ms to wait for the lock; 0 tries once. Default 5000. */
  readonly wait?: number;
  /** Gives up waiting when aborted. */
  readonly signal?: AbortSignal;
}

export interface LockClientDeps {
  readonly proposer: Proposer;
  /** This node's copy of the replicated lock table: a waiter notices its grant there. */
  readonly table: LockModule;
  /** Monotonic. */
  readonly clock: Clock;
  readonly timers: Timers;
  /** Unique per process start; identifies this node's requests. */
  readonly owner: string;
}

const POLL_MS = 10;

/**
 * How a held lock's lease is kept: the embedded backend proposes lock-table commands, etcd keeps an etcd lease alive.
 * `renew` resolves false once the lock is surely no longer ours; it throws when it cannot tell (ClusterStoppedError
 * ends the lock, any other error leaves the expiry timer to decide).
 */
export interface LockLease {
  renew(): Promise<boolean>;
  /** Best effort: a lease that is not released ends by itself. */
  release(): Promise<void>;
}

/**
 * Checks acquire's arguments and fills in the defaults (ttl 10000 ms, wait 5000 ms): one set of rules and messages
 * for every backend.
 */
export function lockAcquireArgs(name: string, opts: LockAcquireOptions): { ttl: number; wait: number } {
  const ttl = opts.ttl ?? 10_000;
  const wait = opts.wait ?? 5_000;
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('lock names are non-empty strings');
  if (!Number.isFinite(ttl) || ttl <= 0) throw new TypeError(`lock ttl must be a positive number of ms, got ${ttl}`);
  if (!Number.isFinite(wait) || wait < 0) throw new TypeError(`lock wait must be a number of ms >= 0, got ${wait}`);
  return { ttl, wait };
}

/**
 * Lease time this side gives up before the replicated lease could end. The replicated lease is measured on leader wall
 * clocks (entry times), ours on the local monotonic clock from when the renewal was sent; the margin covers clock
 * rate differences and the offset between two leaders' wall clocks, which must stay below it.
 */
export function lockSafetyMargin(ttl: number): number {
  return Math.min(ttl / 2, Math.max(50, ttl / 10));
}

/** `cluster.locks`: leased locks with fencing tokens, usable from any node. */
export class ClusterLocks {
  private seq = 0;

  constructor(private readonly d: LockClientDeps) {}

  /**
   * Acquires `name`, waiting in a fair (FIFO) queue for up to `wait` ms. The returned lock renews itself until
   * released; its `signal` aborts once the lease can no longer be relied on. Throws LockTimeoutException when not
   * acquired in time.
   */
  async acquire(name: string, opts: LockAcquireOptions = {}): Promise<DistributedLock> {
    const { ttl, wait } = lockAcquireArgs(name, opts);
    const { clock } = this.d;
    const deadline = clock.now() + wait;
    const retryEvery = Math.min(250, Math.max(20, ttl / 4));
    const requestId = `${this.d.owner}:${++this.seq}`;
    const base = { op: 'acquire' as const, name, owner: this.d.owner, requestId, leaseMs: ttl, waitMs: wait };
    const giveUp = (e: Error): Error => {
      this.propose({ op: 'cancel', name, owner: this.d.owner, requestId }).catch(() => undefined);
      return e;
    };
    const timeout = () => giveUp(new LockTimeoutException(name, `lock "${name}" was not acquired within ${wait} ms`));
    let retry = false;
    for (;;) {
      if (opts.signal?.aborted) throw giveUp(abortReason(opts.signal));
      const sentAt = clock.now();
      let r: AcquireResult | null = null;
      try {
        r = (await this.propose({ ...base, retry })) as AcquireResult;
      } catch (e) {
        // Unknown outcome: ask again as a first attempt, which finds the request if it did apply.
        if (!(e instanceof NoLeaderException || e instanceof ProposalOutcomeUnknownError) || clock.now() >= deadline) throw giveUp(e as Error);
        retry = false;
        continue;
      }
      let leaseFrom: number | null = null;
      if (r.granted) {
        // Granted by this very entry: its lease started after we sent it. Otherwise it started earlier, unknown when.
        if (r.token === r.index) leaseFrom = sentAt;
      } else {
        if (!r.queued) throw timeout();
        retry = true;
        if (clock.now() >= deadline) throw timeout();
        const mine = await this.waitForGrant(name, requestId, Math.min(deadline, clock.now() + retryEvery), opts.signal);
        if (!mine) {
          if (clock.now() >= deadline) throw timeout();
          continue;
        }
      }
      const token = r.granted ? r.token : this.d.table.holder(name)!.token;
      const lease = this.leaseOf(name, token);
      // A grant seen in the table, or one whose reply came too late to leave a usable lease, is renewed until the lease
      // is measured from a moment we know and some of it is left.
      let lost = false;
      while (leaseFrom === null || leaseFrom + ttl - lockSafetyMargin(ttl) <= clock.now()) {
        if (clock.now() >= deadline) throw timeout();
        const renewSentAt = clock.now();
        let renewed: boolean;
        try {
          renewed = await lease.renew();
        } catch (e) {
          if (!(e instanceof NoLeaderException || e instanceof ProposalOutcomeUnknownError)) throw giveUp(e as Error);
          continue; // renewing is idempotent: ask again
        }
        if (!renewed) {
          lost = true;
          break;
        }
        leaseFrom = renewSentAt;
      }
      if (!lost && leaseFrom !== null) return new DistributedLock(name, token, ttl, leaseFrom, this.d, lease);
      retry = false; // it lapsed before we could use it: queue again
      if (clock.now() >= deadline) throw timeout();
    }
  }

  private propose(cmd: LockCommand): Promise<unknown> {
    return this.d.proposer.propose('lock', cmd);
  }

  /** The grant's lease as replicated lock-table commands. */
  private leaseOf(name: string, token: number): LockLease {
    const owner = this.d.owner;
    return {
      renew: async () => ((await this.propose({ op: 'renew', name, owner, token })) as { ok: boolean }).ok,
      release: async () => {
        await this.propose({ op: 'release', name, owner, token });
      },
    };
  }

  /** Polls the local table until the request holds the lock, `until` passes, or the caller aborts. */
  private waitForGrant(name: string, requestId: string, until: number, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.d.table.holder(name)?.requestId === requestId) return resolve(true);
        if (signal?.aborted || this.d.clock.now() >= until) return resolve(false);
        this.d.timers.setTimeout(check, Math.max(1, Math.min(POLL_MS, until - this.d.clock.now())));
      };
      check();
    });
  }
}

/** A held lock. Renews itself every ttl/3; `signal` aborts when it is released or its lease can no longer be trusted. */
export class DistributedLock {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  /** Local monotonic time until which the lease surely holds. */
  private validUntil: number;
  private expiryTimer: TimerHandle | null = null;
  private renewTimer: TimerHandle | null = null;
  private renewing: Promise<void> | null = null;
  private done = false;

  constructor(
    readonly name: string,
    /**
     * Fencing token, strictly increasing per lock name: the log index of the grant (embedded) or the create revision
     * of the lock's etcd key. Pass it to guarded resources.
     */
    readonly token: number,
    private readonly ttl: number,
    /** Local monotonic time at which the lease surely started (or was last surely renewed). */
    leaseFrom: number,
    private readonly d: { readonly clock: Clock; readonly timers: Timers },
    private readonly lease: LockLease,
  ) {
    this.signal = this.controller.signal;
    this.validUntil = leaseFrom + ttl - lockSafetyMargin(ttl);
    this.armExpiry();
    this.scheduleRenew();
  }

  /** True until released or lost. */
  get held(): boolean {
    return !this.done && this.d.clock.now() < this.validUntil;
  }

  /** Extends the lease now. Throws LockLostException when the lock is no longer ours. */
  renew(): Promise<void> {
    if (this.done) return Promise.reject(new LockLostException(this.name, `lock "${this.name}" is no longer held (released or lost)`));
    this.renewing ??= this.doRenew().finally(() => (this.renewing = null));
    return this.renewing;
  }

  /**
   * Gives the lock back; the next waiter gets it at once. Best effort: if the release cannot be committed, the lock
   * frees itself when its lease ends.
   */
  async release(): Promise<void> {
    if (this.done) return;
    this.finish(new Error(`lock "${this.name}" was released`));
    await this.lease.release().catch(() => undefined);
  }

  private async doRenew(): Promise<void> {
    const sentAt = this.d.clock.now();
    let ok: boolean;
    try {
      ok = await this.lease.renew();
    } catch (e) {
      if (e instanceof ClusterStoppedError) this.finish(new LockLostException(this.name, `lock "${this.name}" lost: ${e.message}`));
      throw e;
    }
    if (this.done) return;
    if (!ok) {
      const e = new LockLostException(this.name, `lock "${this.name}" (token ${this.token}) is no longer ours: its lease ran out or another holder has it`);
      this.finish(e);
      throw e;
    }
    this.validUntil = Math.max(this.validUntil, sentAt + this.ttl - lockSafetyMargin(this.ttl));
    this.armExpiry();
  }

  private scheduleRenew(): void {
    this.renewTimer = this.d.timers.setTimeout(() => {
      if (this.done) return;
      this.renew().catch(() => undefined); // a failed renewal leaves the expiry timer to decide
      this.scheduleRenew();
    }, this.ttl / 3);
  }

  private armExpiry(): void {
    this.expiryTimer?.cancel();
    const left = this.validUntil - this.d.clock.now();
    this.expiryTimer = this.d.timers.setTimeout(() => {
      if (this.done) return;
      if (this.d.clock.now() < this.validUntil) return this.armExpiry();
      this.finish(new LockLostException(this.name, `lock "${this.name}" lost: its lease could not be renewed before it ran out`));
    }, Math.max(1, left)); // at least 1 ms: a re-arm for a sliver of time must let the clock move on
  }

  private finish(reason: Error): void {
    if (this.done) return;
    this.done = true;
    this.expiryTimer?.cancel();
    this.renewTimer?.cancel();
    this.controller.abort(reason);
  }
}

/** What an aborted acquire rejects with: the signal's reason when it is an Error. */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('lock acquisition aborted');
}
