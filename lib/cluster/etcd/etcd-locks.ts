/**
 * `cluster.locks` on etcd. Each acquire gets its own etcd lease and one key `<prefix>locks/<name>/<leaseId>` on it;
 * keys hold the lock in create-revision order (FIFO), so the key's create revision is the fencing token. A waiter
 * watches only the key just before its own, so a release wakes one waiter, not all of them.
 *
 * Why the local view is safe: etcd ends a lease no earlier than TTL after it took the grant or a keepalive, and the
 * TTL it grants is at least ⌈ttl/1000⌉ s ≥ ttl. The lock measures its validity with the caller's ttl from the local
 * moment just before that grant/keepalive was sent, minus lockSafetyMargin: it gives up before etcd can delete the key,
 * and the next waiter starts only once it sees that delete.
 *
 * Why a waiter may still wait after that delete: etcd before the fix for etcd-io/etcd#15247 can revoke a lease early
 * (a stale etcd leader's revokes get committed), so a key can vanish while its holder still trusts its lease for up to
 * its ttl. Each key therefore carries its ttl, and an owner that holds nothing any more (release, giving up) marks its
 * key `released` before deleting it. A waiter whose last predecessor vanished unmarked, or whose own key vanished
 * while others were ahead of it, counts its lock only a ttl after it saw that (docs/etcd.md, as the election does).
 */
import { randomBytes } from 'node:crypto';
import { EtcdLeaseInvalidError, type Etcd3, type IKeyValue, type ILeaseKeepAliveResponse, type Watcher } from 'etcd3';
import type { ClusterLocks } from '../backend.js';
import type { Clock, TimerHandle, Timers } from '../../io/clock.js';
import { abortReason, DistributedLock, lockAcquireArgs, lockSafetyMargin, type LockAcquireOptions, type LockLease } from '../distributed-lock.js';
import { ClusterStoppedError, NoLeaderException, ProposalOutcomeUnknownError } from '../errors.js';
import { LockTimeoutException } from '../lock-errors.js';
import { callOptions, isClosedClient, toClusterError } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { keepaliveOnce } from './lease-keepalive.js';

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

/** What a lock key holds. */
interface LockValue {
  readonly owner: string;
  /** The acquire's ttl (ms): how long its owner may still trust its lease after etcd dropped the key early. */
  readonly ttl: number;
  /** Its owner holds nothing any more (released, or gave up waiting): a successor need not wait out `ttl`. */
  readonly released?: true;
  /** With `released`: a wait the owner still owed an earlier holder, in ms from the key's delete; a successor inherits it. */
  readonly waitMs?: number;
}

/** How long after seeing `kv` vanish a successor must wait before its lock counts. */
function waitAfterVanish(kv: IKeyValue, fallbackTtl: number): number {
  let v: Partial<LockValue>;
  try {
    v = JSON.parse(kv.value.toString()) as Partial<LockValue>;
  } catch {
    return fallbackTtl; // not ours to read: assume a holder with our ttl
  }
  if (v.released === true) return typeof v.waitMs === 'number' && v.waitMs > 0 ? v.waitMs : 0;
  return typeof v.ttl === 'number' && v.ttl > 0 ? v.ttl : fallbackTtl;
}

/** What one acquire learned across its attempts: its lock must not count before `notBefore` (local ms). */
interface Takeover {
  notBefore: number;
}

export class EtcdLocks implements ClusterLocks {
  constructor(private readonly d: EtcdLocksDeps) {}

  async acquire(name: string, opts: LockAcquireOptions = {}): Promise<DistributedLock> {
    const { ttl, wait } = lockAcquireArgs(name, opts);
    const deadline = this.d.clock.now() + wait;
    // Kept across attempts: a wait learned before our key vanished still applies to the next key.
    const takeover: Takeover = { notBefore: 0 };
    for (;;) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      const lock = await new Attempt(this.d, name, ttl, wait, deadline, takeover, opts.signal).run();
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

/** A random positive int64 as etcd takes lease ids: chosen here so a grant with an unknown outcome can be revoked. */
function newLeaseId(): string {
  for (;;) {
    const id = BigInt.asUintN(63, randomBytes(8).readBigUInt64BE());
    if (id > 0n) return id.toString();
  }
}

/** The key ahead of ours that we wait for. */
interface Predecessor {
  readonly key: string;
  /** From its last value seen (read, or the watch's previous value at its delete). */
  wait: number;
}

/** One lease and one queue key, from grant to a held lock or until given up. */
class Attempt {
  private leaseId: string | null = null;
  private key = '';
  private keyCreated = false;
  /** Local time just before the newest grant/keepalive that etcd confirmed was sent. */
  private leaseFrom = 0;
  /** etcd said the lease is gone: so is our key. */
  private lost = false;
  /** The etcd client was closed (the backend stops): no call can succeed any more. */
  private closed = false;
  private wake: (() => void) | null = null;
  private keepaliveTimer: TimerHandle | null = null;
  private settled = false;

  constructor(
    private readonly d: EtcdLocksDeps,
    private readonly name: string,
    private readonly ttl: number,
    private readonly wait: number,
    private readonly deadline: number,
    private readonly takeover: Takeover,
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
    const leaseId = await this.grant();
    this.key = `${keys.lockPrefix(this.name)}${leaseId}`;
    const key = this.key;
    const value = JSON.stringify({ owner: this.d.owner, ttl: this.ttl } satisfies LockValue);
    let token: number;
    try {
      // Create == 0 makes a retry after an unknown outcome harmless: it reads the key the first try made.
      token = await this.step('lock key create', async () => {
        const res = await client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).options(this.callOptions()).commit();
        if (res.succeeded) return revisionOf(res.header.revision);
        const kv: IKeyValue | undefined = res.responses[0]?.response_range?.kvs[0];
        if (!kv) throw new EtcdLeaseInvalidError(leaseId);
        return revisionOf(kv.create_revision);
      });
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) return LOST;
      throw e;
    }
    this.keyCreated = true;
    const lease = this.lockLease(leaseId);
    this.scheduleKeepalive(lease);

    // FIFO: wait for the key just before ours to go, until none is left and no takeover wait is pending.
    let pred: Predecessor | null = null;
    for (;;) {
      this.checkAbort();
      const r = await this.step('lock queue read', () =>
        client
          .if(key, 'Create', '==', token)
          .then(client.getAll().prefix(keys.lockPrefix(this.name)).maxCreateRevision(token - 1).sort('Create', 'Descend').limit(1))
          .options(this.callOptions())
          .commit(),
      );
      const before: IKeyValue | undefined = r.succeeded ? r.responses[0]?.response_range?.kvs[0] : undefined;
      if (!r.succeeded || this.lost) {
        // Our key went while a key was ahead: etcd may have revoked that holder's lease early along with ours.
        if (pred) this.waitUntil(clock.now() + Math.max(pred.wait, this.ttl));
        return LOST;
      }
      // Keys ahead of ours are never created, only deleted: one that is still there was there all along, so the key
      // that vanished in front of it never held the lock. Only the last one ahead may have.
      if (pred && !before) this.waitUntil(clock.now() + pred.wait);
      if (!before) {
        if (clock.now() >= this.takeover.notBefore) break;
        if (this.takeover.notBefore >= this.deadline) throw timeoutError(this.name, this.wait); // it cannot count in time
        await this.sleepUntil(this.takeover.notBefore);
        if (this.lost) return LOST;
        pred = null;
        continue; // and check that our key is still there
      }
      pred = { key: before.key.toString(), wait: waitAfterVanish(before, this.ttl) };
      if (clock.now() >= this.deadline) throw timeoutError(this.name, this.wait); // wait 0: this one look only
      await this.waitForDelete(before.key, revisionOf(r.header.revision) + 1, pred);
      if (this.closed) throw new ClusterStoppedError(`lock "${this.name}": the etcd client is closed`);
      if (this.lost) return LOST;
    }

    // A grant that took most of the lease to come back leaves nothing usable: renew until some of it is left.
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

  /**
   * Grants this attempt's lease under an id of our choosing: a grant whose outcome was unknown is revoked by its id
   * before the next try (best effort; one that etcd applies after that revoke expires within its TTL, keyless).
   */
  private async grant(): Promise<string> {
    const ttlS = Math.ceil(this.ttl / 1000);
    for (;;) {
      this.checkAbort();
      const id = newLeaseId();
      this.leaseId = id;
      this.leaseFrom = this.d.clock.now();
      try {
        const res = await this.d.client.leaseClient.leaseGrant({ TTL: ttlS, ID: id }, this.callOptions());
        if (res.error) throw new Error(`etcd refused a ${ttlS} s lease: ${res.error}`);
        return id;
      } catch (e) {
        const err = toClusterError(e, `lock "${this.name}": lock lease grant`);
        if (!transient(err) || this.d.clock.now() >= this.deadline) throw err;
        if (err instanceof ProposalOutcomeUnknownError) void this.revoke(id);
        this.leaseId = null;
      }
      await this.pause();
    }
  }

  /** How the held lock renews and releases: keepalives, and the release mark then the revoke of this attempt's lease. */
  private lockLease(id: string): LockLease {
    const what = `lock "${this.name}"`;
    // A renewal answered after the next is due is useless, and one hanging on a stalled member would hold up the next.
    const renewTimeout = Math.min(this.d.requestTimeoutMs, Math.max(250, this.ttl / 3));
    return {
      renew: async () => {
        try {
          const res = await this.keepaliveOnce(id, renewTimeout);
          return revisionOf(res.TTL) > 0;
        } catch (e) {
          if (e instanceof EtcdLeaseInvalidError) return false;
          // This node is stopping: the lock ends now rather than at its expiry.
          if (isClosedClient(e)) throw new ClusterStoppedError(`${what}: the etcd client is closed`);
          throw toClusterError(e, `${what} renew`);
        }
      },
      release: async () => {
        // DistributedLock ended the lock locally before calling this: the mark is true, and spares the next a wait.
        await this.markReleased(0);
        try {
          await this.d.client.leaseClient.leaseRevoke({ ID: id }, this.callOptions());
        } catch (e) {
          if (e instanceof EtcdLeaseInvalidError) return; // gone already
          throw toClusterError(e, `${what} release`);
        }
      },
    };
  }

  /** One keepalive on a stream of its own, bounded by `timeoutMs` even if the stream never answers. */
  private async keepaliveOnce(id: string, timeoutMs: number): Promise<ILeaseKeepAliveResponse> {
    const late = () => new ProposalOutcomeUnknownError(`lock "${this.name}": keepalive not answered in time`);
    return (await keepaliveOnce(this.d.client, id, timeoutMs, this.d.timers, late)).answer;
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
        (e: unknown) => {
          if (this.settled || !(e instanceof ClusterStoppedError)) return; // the next keepalive, or the queue read, decides
          this.closed = true;
          this.wake?.();
        },
      );
      this.scheduleKeepalive(lease);
    }, this.ttl / 3);
  }

  /** Moves the takeover wait out to `at` (never in): a holder we cannot rule out may trust its lease until then. */
  private waitUntil(at: number): void {
    this.takeover.notBefore = Math.max(this.takeover.notBefore, at);
  }

  /** Sleeps until `at` (local), or the deadline, an abort, a loss, or a re-check is due. */
  private async sleepUntil(at: number): Promise<void> {
    const { clock, timers } = this.d;
    let timer: TimerHandle | undefined;
    const onAbort = () => this.wake?.();
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.signal?.addEventListener('abort', onAbort);
        timer = timers.setTimeout(resolve, Math.max(1, Math.min(RECHECK_MS, at - clock.now(), this.deadline - clock.now())));
      });
    } finally {
      this.wake = null;
      timer?.cancel();
      this.signal?.removeEventListener('abort', onAbort);
    }
    this.checkDeadline();
  }

  /**
   * Resolves once `key` is deleted (watched from `fromRevision`; `pred.wait` then follows its last value), or the
   * deadline, an abort, a loss, or a re-check is due.
   */
  private async waitForDelete(key: Buffer, fromRevision: number, pred: Predecessor): Promise<void> {
    const { client, clock, timers } = this.d;
    const parts: { watcher?: Watcher; timer?: TimerHandle; retry?: TimerHandle } = {};
    const onAbort = () => this.wake?.();
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        // A watch that cannot be set up: re-read after a pause rather than spin on reads; at once if the client is closed.
        const retryLater = (e: unknown) => {
          if (this.wake !== resolve) return; // this wait is over: no timer outlives it
          if (isClosedClient(e)) {
            this.closed = true;
            return resolve();
          }
          parts.retry?.cancel();
          parts.retry = timers.setTimeout(resolve, RETRY_PAUSE_MS);
        };
        this.signal?.addEventListener('abort', onAbort);
        parts.timer = timers.setTimeout(resolve, Math.max(1, Math.min(RECHECK_MS, this.deadline - clock.now())));
        client
          .watch()
          .key(key)
          .only('delete')
          .withPreviousKV()
          .startRevision(String(fromRevision))
          .create()
          .then(
            (w) => {
              if (this.wake !== resolve) {
                w.on('error', () => undefined); // an unheard 'error' event would throw
                return void w.cancel().catch(() => undefined); // this wait is over already
              }
              parts.watcher = w;
              w.on('delete', (_kv: IKeyValue, prev?: IKeyValue) => {
                // Without the previous value (compacted, or an old etcd) the value read before decides.
                if (prev) pred.wait = waitAfterVanish(prev, this.ttl);
                resolve();
              });
              w.on('error', retryLater);
            },
            retryLater,
          );
      });
    } finally {
      this.wake = null;
      parts.timer?.cancel();
      parts.retry?.cancel();
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

  /**
   * Marks our key released, keeping its lease (ignoreLease also fails rather than re-create a key that is gone), with
   * any takeover wait we still owed so that our successor inherits it. Best effort: unmarked, it waits our ttl.
   */
  private async markReleased(waitMs: number): Promise<void> {
    if (!this.keyCreated) return;
    const v: LockValue = { owner: this.d.owner, ttl: this.ttl, released: true, ...(waitMs > 0 ? { waitMs: Math.ceil(waitMs) } : {}) };
    await this.d.client.put(this.key).value(JSON.stringify(v)).ignoreLease().options(this.callOptions()).exec().catch(() => undefined);
  }

  private async revoke(id: string): Promise<void> {
    await this.d.client.leaseClient.leaseRevoke({ ID: id }, this.callOptions()).catch(() => undefined);
  }

  /** Leaves the queue: mark and delete our key (the next waiter goes on at once) and revoke the lease. Best effort. */
  private async giveUp(): Promise<void> {
    this.settled = true;
    this.keepaliveTimer?.cancel();
    const id = this.leaseId;
    if (!id) return;
    if (this.keyCreated && !this.closed) {
      // Never a holder, so the mark is true; but a wait we owed an earlier holder passes on to our successor.
      await this.markReleased(this.takeover.notBefore - this.d.clock.now());
      await this.d.client.delete().key(this.key).options(this.callOptions()).exec().catch(() => undefined);
    }
    await this.revoke(id);
  }

  private callOptions(): { deadline: Date } {
    return callOptions(this.d.requestTimeoutMs);
  }
}
