/**
 * `cluster.locks` on etcd. Each acquire gets its own etcd lease and one key `<prefix>locks/<name>/<leaseId>` on it;
 * keys hold the lock in create-revision order (FIFO), so the key's create revision is the fencing token. A waiter
 * watches only the key just before its own, so a release wakes one waiter, not all of them.
 *
 * Why the local view is safe: etcd ends a lease no earlier than TTL after it took the grant or a keepalive, and the
 * TTL it grants is at least ⌈ttl/1000⌉ s ≥ ttl. The lock measures its validity with the caller's ttl from the local
 * moment just before that grant/keepalive was sent, minus lockSafetyMargin: it gives up before etcd can delete the key,
 * and the next waiter starts only once it sees that delete.
 */
import { EtcdLeaseInvalidError, type Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import type { ClusterLocks } from '../backend.js';
import type { Clock, TimerHandle, Timers } from '../../io/clock.js';
import { abortReason, DistributedLock, lockAcquireArgs, lockSafetyMargin, type LockAcquireOptions, type LockLease } from '../distributed-lock.js';
import { ClusterStoppedError, NoLeaderException, ProposalOutcomeUnknownError } from '../errors.js';
import { LockTimeoutException } from '../lock-errors.js';
import { callOptions, isClosedClient, toClusterError } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';

export interface EtcdLocksDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  /** Monotonic. */
  readonly clock: Clock;
  readonly timers: Timers;
  /** Unique per process start; written into the lock keys so an operator can tell who waits and who holds. */
  readonly owner: string;
  /** Deadline of every etcd call. */
  readonly requestTimeoutMs: number;
}

/** A waiter re-reads its predecessor this often even without a watch event: a lost watch must not strand it. */
const RECHECK_MS = 2_000;
/** Pause between attempts of a step whose etcd call failed without a definite answer. */
const RETRY_PAUSE_MS = 50;

/** Our key vanished (its lease ran out while we waited): the place in the queue is gone, queue again. */
const LOST = Symbol('lost');

export class EtcdLocks implements ClusterLocks {
  constructor(private readonly d: EtcdLocksDeps) {}

  async acquire(name: string, opts: LockAcquireOptions = {}): Promise<DistributedLock> {
    const { ttl, wait } = lockAcquireArgs(name, opts);
    const deadline = this.d.clock.now() + wait;
    for (;;) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      const lock = await new Attempt(this.d, name, ttl, wait, deadline, opts.signal).run();
      if (lock !== LOST) return lock;
      if (this.d.clock.now() >= deadline) throw timeoutError(name, wait);
    }
  }
}

function timeoutError(name: string, wait: number): LockTimeoutException {
  return new LockTimeoutException(name, `lock "${name}" was not acquired within ${wait} ms`);
}

/** Both mean the call may be tried again: it surely did not apply, or doing it twice is harmless. */
function transient(e: Error): boolean {
  return e instanceof NoLeaderException || e instanceof ProposalOutcomeUnknownError;
}

/** One lease and one queue key, from grant to a held lock or until given up. */
class Attempt {
  private lease: Lease | null = null;
  private leaseApi: LockLease | null = null;
  private key = '';
  /** Local time just before the newest grant/keepalive that etcd confirmed was sent. */
  private leaseFrom = 0;
  /** etcd said the lease is gone: so is our key. */
  private lost = false;
  private wake: (() => void) | null = null;
  private keepaliveTimer: TimerHandle | null = null;
  private settled = false;

  constructor(
    private readonly d: EtcdLocksDeps,
    private readonly name: string,
    private readonly ttl: number,
    private readonly wait: number,
    private readonly deadline: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async run(): Promise<DistributedLock | typeof LOST> {
    try {
      const r = await this.acquire();
      if (r === LOST) await this.giveUp();
      return r;
    } catch (e) {
      await this.giveUp();
      throw e;
    } finally {
      this.settled = true;
      this.keepaliveTimer?.cancel();
    }
  }

  private async acquire(): Promise<DistributedLock | typeof LOST> {
    const { client, clock, keys } = this.d;
    const leaseId = await this.step('lock lease grant', async () => {
      this.leaseFrom = clock.now();
      // autoKeepAlive off: the lock renews on its own clock (etcd3's loop reports a loss only after 2·TTL).
      this.lease = client.lease(Math.ceil(this.ttl / 1000), { autoKeepAlive: false, ...this.callOptions() });
      return this.lease.grant();
    });
    this.key = `${keys.lockPrefix(this.name)}${leaseId}`;
    const key = this.key;
    let token: number;
    try {
      // Create == 0 makes a retry after an unknown outcome harmless: it reads the key the first try made.
      token = await this.step('lock key create', async () => {
        const res = await client.if(key, 'Create', '==', 0).then(client.put(key).value(this.d.owner).lease(leaseId)).else(client.get(key)).options(this.callOptions()).commit();
        if (res.succeeded) return revisionOf(res.header.revision);
        const kv: IKeyValue | undefined = res.responses[0]?.response_range?.kvs[0];
        if (!kv) throw new EtcdLeaseInvalidError(leaseId);
        return revisionOf(kv.create_revision);
      });
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) return LOST;
      throw e;
    }
    this.leaseApi = this.lockLease(this.lease!);
    this.scheduleKeepalive(this.leaseApi);

    // FIFO: wait for the key just before ours to go, until none is left.
    for (;;) {
      this.checkAbort();
      const r = await this.step('lock queue read', () =>
        client
          .if(key, 'Create', '==', token)
          .then(client.getAll().prefix(keys.lockPrefix(this.name)).maxCreateRevision(token - 1).sort('Create', 'Descend').limit(1))
          .options(this.callOptions())
          .commit(),
      );
      if (!r.succeeded || this.lost) return LOST;
      const before: IKeyValue | undefined = r.responses[0]?.response_range?.kvs[0];
      if (!before) break;
      if (clock.now() >= this.deadline) throw timeoutError(this.name, this.wait); // wait 0: this one look only
      await this.waitForDelete(before.key, revisionOf(r.header.revision) + 1);
      if (this.lost) return LOST;
    }

    // A grant that took most of the lease to come back leaves nothing usable: renew until some of it is left.
    const lease = this.leaseApi!;
    while (this.leaseFrom + this.ttl - lockSafetyMargin(this.ttl) <= clock.now()) {
      this.checkDeadline();
      const sentAt = clock.now();
      let renewed: boolean;
      try {
        renewed = await lease.renew();
      } catch (e) {
        if (!transient(e as Error)) throw e;
        await this.pause(); // a keepalive is idempotent: ask again
        continue;
      }
      if (!renewed) return LOST;
      this.leaseFrom = sentAt;
    }
    this.settled = true;
    this.keepaliveTimer?.cancel();
    return new DistributedLock(this.name, token, this.ttl, this.leaseFrom, { clock, timers: this.d.timers }, lease);
  }

  /** How the held lock renews and releases: keepalives and the revoke of this attempt's lease. */
  private lockLease(lease: Lease): LockLease {
    const what = `lock "${this.name}"`;
    // A renewal answered after the next is due is useless, and one hanging on a stalled member would hold up the next.
    const renewTimeout = Math.min(this.d.requestTimeoutMs, Math.max(250, this.ttl / 3));
    return {
      renew: async () => {
        try {
          const res = await lease.keepaliveOnce(callOptions(renewTimeout));
          return revisionOf(res.TTL) > 0;
        } catch (e) {
          if (e instanceof EtcdLeaseInvalidError) return false;
          // This node is stopping: the lock ends now rather than at its expiry.
          if (isClosedClient(e)) throw new ClusterStoppedError(`${what}: the etcd client is closed`);
          throw toClusterError(e, `${what} renew`);
        }
      },
      release: async () => {
        try {
          await lease.revoke(this.callOptions());
        } catch (e) {
          throw toClusterError(e, `${what} release`);
        }
      },
    };
  }

  /** Keeps the waiting key alive: a wait longer than the lease must not lose our place. */
  private scheduleKeepalive(lease: LockLease): void {
    this.keepaliveTimer = this.d.timers.setTimeout(() => {
      if (this.settled) return;
      const sentAt = this.d.clock.now();
      lease.renew().then(
        (ok) => {
          if (this.settled) return;
          if (ok) this.leaseFrom = Math.max(this.leaseFrom, sentAt);
          else {
            this.lost = true;
            this.wake?.();
          }
        },
        () => undefined, // the next keepalive, or the queue read finding the key gone, decides
      );
      this.scheduleKeepalive(lease);
    }, this.ttl / 3);
  }

  /** Resolves once `key` is deleted (watched from `fromRevision`), or the deadline, an abort, a loss, or a re-check is due. */
  private async waitForDelete(key: Buffer, fromRevision: number): Promise<void> {
    const { client, clock, timers } = this.d;
    const parts: { watcher?: Watcher; timer?: TimerHandle } = {};
    const onAbort = () => this.wake?.();
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        // A watch that cannot be set up: re-read after a pause rather than spin on reads.
        const retryLater = () => timers.setTimeout(resolve, RETRY_PAUSE_MS);
        this.signal?.addEventListener('abort', onAbort);
        parts.timer = timers.setTimeout(resolve, Math.max(1, Math.min(RECHECK_MS, this.deadline - clock.now())));
        client
          .watch()
          .key(key)
          .only('delete')
          .startRevision(String(fromRevision))
          .create()
          .then(
            (w) => {
              if (this.wake !== resolve) {
                w.on('error', () => undefined); // an unheard 'error' event would throw
                return void w.cancel().catch(() => undefined); // this wait is over already
              }
              parts.watcher = w;
              w.on('delete', () => resolve());
              w.on('error', retryLater);
            },
            retryLater,
          );
      });
    } finally {
      this.wake = null;
      parts.timer?.cancel();
      this.signal?.removeEventListener('abort', onAbort);
      parts.watcher?.cancel().catch(() => undefined);
    }
  }

  /** Runs an etcd call, again after a failure with no definite answer while the wait allows. */
  private async step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      this.checkAbort();
      try {
        return await fn();
      } catch (e) {
        if (e instanceof EtcdLeaseInvalidError) throw e;
        const err = toClusterError(e, `lock "${this.name}": ${what}`);
        if (!transient(err) || this.d.clock.now() >= this.deadline) throw err;
      }
      await this.pause();
    }
  }

  private pause(): Promise<void> {
    return new Promise<void>((r) => this.d.timers.setTimeout(r, Math.max(1, Math.min(RETRY_PAUSE_MS, this.deadline - this.d.clock.now()))));
  }

  private checkAbort(): void {
    if (this.signal?.aborted) throw abortReason(this.signal);
  }

  private checkDeadline(): void {
    this.checkAbort();
    if (this.d.clock.now() >= this.deadline) throw timeoutError(this.name, this.wait);
  }

  /** Leaves the queue: delete our key (the next waiter goes on at once) and revoke the lease. Best effort. */
  private async giveUp(): Promise<void> {
    this.settled = true;
    this.keepaliveTimer?.cancel();
    const lease = this.lease;
    if (!lease) return;
    if (this.key) await this.d.client.delete().key(this.key).options(this.callOptions()).exec().catch(() => undefined);
    await lease.revoke(this.callOptions()).catch(() => undefined);
  }

  private callOptions(): { deadline: Date } {
    return callOptions(this.d.requestTimeoutMs);
  }
}
