/**
 * Leader election on etcd, etcd's own recipe: every node puts one key under the election prefix, named by and attached
 * to its session lease; the key with the lowest create revision leads, and its create revision is the tenure number.
 * A candidate is elected once every key created before its own has been deleted, which etcd does only when that
 * key's lease was revoked or expired. The leader's tenure ends locally at its session's validUntil, which is before
 * etcd can expire the lease (see session-lease.ts), so the next leader is elected only after the previous one stopped.
 * Because older etcd releases can revoke a lease early (takeoverDelayMs), a new leader's lease counts only a TTL after
 * its predecessor vanished, unless that predecessor marked its key released (resign, stop) after ending its tenure.
 * That TTL is the longer of the node's own and the predecessor's: every value carries its writer's TTL (`ttlMs`), since
 * nodes with different election timeouts hold leases of different lengths.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { LeadershipSource, LeadershipState } from '../backend.js';
import type { Clock, TimerHandle, Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { NotLeaderException } from '../errors.js';
import { callOptions, toClusterError } from './etcd-client.js';
import { LeaderObserver, parseValue } from './election-observer.js';
import { backoff, Outage, sleep } from './etcd-retry.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { SessionLease } from './session-lease.js';

export interface ElectionValue {
  readonly id: string;
  readonly address: string;
  readonly clientId: string;
  /**
   * The session TTL (ms) its writer's lease validity is based on: a successor waits at least this long after the key
   * vanished unreleased. Absent in values written by older versions; their TTL is taken to be the reader's own.
   */
  readonly ttlMs?: number;
}

export interface EtcdElectionDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly self: ElectionValue;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Session TTL in s; default max(2, ceil(electionTimeoutMs·10/1000)). etcd may raise it. */
  readonly ttlS?: number;
  /**
   * How long a newly elected node waits, after a predecessor's key vanished without being released (expiry, or a
   * crash) and after its own campaign, before its lease counts. Default: the longer of the own session TTL and the
   * predecessor's (its value's `ttlMs`; for the wait after the campaign, the longest one the observer saw on a
   * leader). etcd before the fix for etcd-io/etcd#15247 (PR #16822) can revoke leases up to a TTL early when its own
   * leader stalls (a stale leader's revokes get committed), so the previous leader may still hold a locally valid
   * lease; 0 trusts etcd's expiry.
   */
  readonly takeoverDelayMs?: number;
  /** After each new session lease is granted, before campaigning with it (the backend registers the node under it). */
  readonly onSession?: (lease: SessionLease) => Promise<void>;
  /** After winning, before the lease counts as leader lease (the backend marks older task runs abandoned). */
  readonly beforeLeading?: (tenure: number) => Promise<void>;
}

/** The session TTL (s) and the margin (ms) by which a node gives up its lease before etcd can expire it. */
export function sessionTiming(electionTimeoutMs: number, ttlS?: number): { ttlS: number; marginMs: number } {
  const ttl = ttlS ?? Math.max(2, Math.ceil((electionTimeoutMs * 10) / 1000));
  return { ttlS: ttl, marginMs: Math.min((ttl * 1000) / 2, Math.max(electionTimeoutMs, (ttl * 1000) / 10)) };
}

class Aborted extends Error {}
/** The own election key is gone (etcd revoked the lease): this session can never lead. */
class KeyLost extends Error {}

/** What a candidate learned while waiting: its lease may count from `notBefore`. */
interface Turn {
  notBefore: number;
  /** The predecessor waited for last, and whether it released its key deliberately. */
  pred: string | null;
  predReleased?: boolean;
  /** The predecessor's `ttlMs`, when its value carried one. */
  predTtlMs?: number | undefined;
}

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(new Aborted());
    signal.addEventListener('abort', () => reject(new Aborted()), { once: true });
  });
}

/** A key its owner marked released after ending its tenure. */
function isReleased(kv: IKeyValue): boolean {
  try {
    return (JSON.parse(kv.value.toString()) as { released?: unknown }).released === true;
  } catch {
    return false;
  }
}

interface Tenure {
  readonly rev: number;
  readonly key: string;
  readonly session: SessionLease;
}

export class EtcdElection implements LeadershipSource {
  private readonly ttlS: number;
  private readonly marginMs: number;
  private readonly observer: LeaderObserver;
  private readonly outage: Outage;
  private readonly leadershipListeners = new Set<(s: LeadershipState) => void>();
  private readonly leaseListeners = new Set<(valid: boolean) => void>();
  private readonly stopper = new AbortController();
  private current: { readonly session: SessionLease; readonly abort: AbortController } | null = null;
  private leading: Tenure | null = null;
  private emitted: LeadershipState = { isLeader: false, leaderId: '', term: 0 };
  private leaseValid = false;
  private started = false;
  private crashed = false;
  private active = false;
  private loopDone: Promise<void> = Promise.resolve();
  private crashTimer: TimerHandle | null = null;

  constructor(private readonly d: EtcdElectionDeps) {
    const t = sessionTiming(d.electionTimeoutMs, d.ttlS);
    this.ttlS = t.ttlS;
    this.marginMs = t.marginMs;
    this.outage = new Outage(d.logger, `etcd election (${d.self.id})`);
    this.observer = new LeaderObserver({
      client: d.client,
      prefix: d.keys.electionPrefix,
      clock: d.clock,
      timers: d.timers,
      logger: d.logger,
      requestTimeoutMs: d.requestTimeoutMs,
      ttlMs: this.ttlS * 1000,
      onChange: () => {
        this.checkOwnKey();
        this.notify();
      },
    });
  }

  /** Starts the observer, the session and the campaign; resolves once the observer has its first view. */
  async start(): Promise<void> {
    if (this.started) throw new Error('the etcd election was started before');
    this.started = true;
    this.active = true;
    // The observer reads first: the leaders it has seen bound the takeover wait after the first campaign.
    const observed = this.observer.start();
    this.loopDone = observed.then(() => this.campaignLoop());
    await observed;
    this.notify();
  }

  get session(): SessionLease | null {
    return this.current?.session ?? null;
  }

  get leadership(): LeadershipState {
    if (this.leading) return { isLeader: true, leaderId: this.d.self.id, term: this.leading.rev };
    const seen = this.observer.current();
    if (!seen || !seen.value) return { isLeader: false, leaderId: '', term: this.observer.lastTerm };
    // Our own key leads in etcd but this node does not (yet, or any more): no usable leader right now.
    const leaderId = seen.value.id === this.d.self.id ? '' : seen.value.id;
    return { isLeader: false, leaderId, term: seen.term };
  }

  onLeadershipChange(fn: (s: LeadershipState) => void): () => void {
    this.leadershipListeners.add(fn);
    return () => this.leadershipListeners.delete(fn);
  }

  onLeaseChange(fn: (valid: boolean) => void): () => void {
    this.leaseListeners.add(fn);
    return () => this.leaseListeners.delete(fn);
  }

  /** Leads AND the session lease is valid now (read from the clock). */
  hasValidLease(): boolean {
    return this.leading !== null && this.leading.session.valid();
  }

  /** The own key's create revision while leading with a valid lease. */
  tenureToken(): number | null {
    return this.hasValidLease() ? this.leading!.rev : null;
  }

  /** The own election key while leading (transactions guard on it). */
  ownKey(): string | null {
    return this.leading?.key ?? null;
  }

  /** The current leader's value (its forward address), from the observer. */
  leaderValue(): ElectionValue | null {
    if (this.leading) return this.d.self;
    const v = this.observer.current()?.value ?? null;
    return v && v.id !== this.d.self.id ? v : null;
  }

  /** Linearizable get of the own key: the header revision if it still exists with our create revision. */
  async confirm(timeoutMs: number): Promise<number> {
    const t = this.leading;
    if (!t || !this.hasValidLease()) throw new NotLeaderException(this.leadership.leaderId);
    let r;
    try {
      r = await this.d.client.get(t.key).options(callOptions(timeoutMs)).exec();
    } catch (e) {
      throw toClusterError(e, 'confirming leadership');
    }
    const kv = r.kvs[0];
    if (!kv || revisionOf(kv.create_revision) !== t.rev || this.leading !== t || !this.hasValidLease()) {
      throw new NotLeaderException(this.leadership.leaderId);
    }
    return revisionOf(r.header.revision);
  }

  /** Steps down: the tenure ends, the lease is revoked, and the node campaigns again with a fresh lease. */
  async resign(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = null;
    this.endTenure('resigned');
    cur.abort.abort();
    await this.release(cur.session);
  }

  /** Ends the tenure, revokes the lease (others elect at once), closes watchers; no more campaigning. */
  async stop(): Promise<void> {
    if (!this.active) {
      // After crash() the tenure would end at its timer: a stop ends it now and leaves no timer pending.
      if (this.crashed) {
        this.endTenure('stopped');
        await this.loopEnded();
      }
      return;
    }
    this.active = false;
    this.stopper.abort();
    const cur = this.current;
    this.current = null;
    this.endTenure('stopped');
    cur?.abort.abort();
    this.observer.stop();
    if (cur) await this.release(cur.session);
    await this.loopEnded();
  }

  /** The loop may be inside a grant or a callback: give it a request timeout to notice. */
  private async loopEnded(): Promise<void> {
    const giveUp = new AbortController();
    await Promise.race([this.loopDone, sleep(this.d.timers, this.d.requestTimeoutMs + 1_000, giveUp.signal)]);
    giveUp.abort();
  }

  /**
   * Test seam: the process loses etcd. Keepalives, watchers and the campaign stop without revoking; the tenure still
   * ends locally at the session's validUntil, as it would in a node cut off from etcd, and etcd expires the lease.
   */
  crash(): void {
    if (!this.active) return;
    this.active = false;
    this.crashed = true;
    this.stopper.abort();
    const cur = this.current;
    this.current = null;
    cur?.abort.abort();
    this.observer.stop();
    if (!cur) return;
    cur.session.abandon();
    if (this.leading) {
      const at = cur.session.validUntil;
      this.crashTimer = this.d.timers.setTimeout(() => this.endTenure('lost etcd'), Math.max(0, at - this.d.clock.now()));
    }
  }

  // ---- the campaign ---------------------------------------------------------------------------------------------

  /** One session after another until stopped: grant, register, campaign, wait, lead until the session ends. */
  private async campaignLoop(): Promise<void> {
    for (let failures = 0; this.active; ) {
      let session: SessionLease;
      try {
        session = await SessionLease.grant(this.d.client, this.ttlS, {
          clock: this.d.clock,
          timers: this.d.timers,
          logger: this.d.logger,
          marginMs: this.marginMs,
          requestTimeoutMs: this.d.requestTimeoutMs,
        });
        failures = 0;
        this.outage.ok();
      } catch (e) {
        if (!this.active) return;
        this.outage.failed(e, 'granting a session lease');
        await sleep(this.d.timers, backoff(failures++), this.stopper.signal);
        continue;
      }
      if (!this.active) {
        if (this.crashed) session.abandon();
        else await session.revoke();
        return;
      }
      const abort = new AbortController();
      this.current = { session, abort };
      const off = session.onLapse(() => this.endSession(session, 'its etcd session lease lapsed'));
      try {
        await this.runSession(session, abort.signal);
      } catch (e) {
        if (e instanceof KeyLost) this.endSession(session, 'etcd deleted its election key');
        else if (!(e instanceof Aborted)) this.d.logger.error(`etcd election: unexpected failure: ${(e as Error).message}`);
      } finally {
        off();
      }
    }
  }

  private async runSession(session: SessionLease, signal: AbortSignal): Promise<void> {
    const onSession = this.d.onSession;
    if (onSession) await this.retrying(signal, 'registering this node', () => onSession(session));
    const key = this.d.keys.electionKey(session.id);
    const rev = await this.retrying(signal, 'campaigning', () => this.campaign(key, session));
    // A leader whose lease etcd dropped early may have gone just before our campaign (see takeoverDelayMs): it was,
    // most likely, one the observer saw, so wait out the longest TTL seen on a leader.
    const turn: Turn = { notBefore: this.d.clock.now() + this.takeoverWaitMs(session, this.observer.longestTtlMs), pred: null };
    await this.retrying(signal, 'waiting for the earlier candidates', () => this.waitForTurn(key, rev, session, turn, signal));
    const beforeLeading = this.d.beforeLeading;
    if (beforeLeading) await this.retrying(signal, 'preparing to lead', () => beforeLeading(rev));
    const wait = turn.notBefore - this.d.clock.now();
    if (wait > 0) {
      this.d.logger.log(`this node (${this.d.self.id}) won the election (term ${rev}); its lease counts in ${Math.ceil(wait)} ms`);
      await sleep(this.d.timers, wait, signal);
    }
    // A session that lapsed meanwhile is ended by its lapse listener; never lead on it.
    if (!signal.aborted && this.current?.session === session && session.valid()) {
      this.becomeLeader({ rev, key, session });
      // The key may have gone during the wait, seen by the observer while this node did not lead yet.
      this.checkOwnKey();
    }
    await untilAborted(signal);
  }

  /** Runs `fn` until it succeeds, backing off while etcd does not answer; throws Aborted once the session ends. */
  private async retrying<T>(signal: AbortSignal, doing: string, fn: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      if (signal.aborted) throw new Aborted();
      try {
        const r = await fn();
        this.outage.ok();
        return r;
      } catch (e) {
        if (signal.aborted || e instanceof Aborted) throw new Aborted();
        if (e instanceof KeyLost) throw e;
        this.outage.failed(e, doing);
        await sleep(this.d.timers, backoff(failures), signal);
      }
    }
  }

  /** Puts the own key unless it exists (a retry after an unknown outcome); resolves with its create revision. */
  private async campaign(key: string, session: SessionLease): Promise<number> {
    const c = this.d.client;
    const r = await c
      .if(key, 'Create', '==', 0)
      .then(c.put(key).value(JSON.stringify(this.valueFor(session))).lease(session.id))
      .else(c.get(key))
      .options(callOptions(this.d.requestTimeoutMs))
      .commit();
    if (r.succeeded) return revisionOf(r.header.revision);
    const kv = r.responses[0]?.response_range.kvs[0];
    if (!kv) throw new Error(`election key ${key} vanished while campaigning`);
    return revisionOf(kv.create_revision);
  }

  /**
   * Resolves once no key under the election prefix was created before `rev`, while the own key still exists (else
   * KeyLost). Moves `turn.notBefore` past every predecessor that vanished without releasing its key.
   */
  private async waitForTurn(key: string, rev: number, session: SessionLease, turn: Turn, signal: AbortSignal): Promise<void> {
    const c = this.d.client;
    for (;;) {
      if (signal.aborted) throw new Aborted();
      const r = await c
        .if(key, 'Create', '==', rev)
        .then(c.getAll().prefix(this.d.keys.electionPrefix).maxCreateRevision(Math.max(1, rev - 1)).sort('Create', 'Descend').limit(1))
        .options(callOptions(this.d.requestTimeoutMs))
        .commit();
      if (!r.succeeded) throw new KeyLost();
      const kv = rev > 1 ? r.responses[0]?.response_range.kvs[0] : undefined;
      const pred = kv ? kv.key.toString() : null;
      if (turn.pred !== null && turn.pred !== pred && !turn.predReleased) {
        // The key ahead need not be the leader's (an early revoke can take several keys at once): wait out the longest
        // TTL a leader was seen with too.
        const ttlMs = Math.max(turn.predTtlMs ?? 0, this.observer.longestTtlMs ?? 0) || undefined;
        turn.notBefore = Math.max(turn.notBefore, this.d.clock.now() + this.takeoverWaitMs(session, ttlMs));
      }
      turn.pred = pred;
      turn.predReleased = false;
      turn.predTtlMs = kv ? parseValue(kv)?.ttlMs : undefined;
      if (!kv) return;
      if ((await this.deleted(kv.key, revisionOf(r.header.revision) + 1, signal)) === 'released') turn.predReleased = true;
    }
  }

  /**
   * How long a predecessor that vanished unreleased may still hold a locally valid lease: its TTL (`predTtlMs`, or
   * the own one for values without it), and never less than the own TTL. An explicit takeoverDelayMs overrides both.
   */
  private takeoverWaitMs(session: SessionLease, predTtlMs: number | undefined): number {
    if (this.d.takeoverDelayMs !== undefined) return this.d.takeoverDelayMs;
    const own = session.ttlS * 1000;
    return Math.max(own, predTtlMs ?? own);
  }

  /** The own election value: the granted TTL, which the lease's validity is based on, tells successors how long to wait. */
  private valueFor(session: SessionLease): ElectionValue {
    return { ...this.d.self, ttlMs: session.ttlS * 1000 };
  }

  /** Resolves when `key` is deleted after `fromRev` (saying whether it was released), the session ends, or it is time to look again. */
  private deleted(key: Buffer, fromRev: number, signal: AbortSignal): Promise<'released' | 'deleted' | 'recheck'> {
    return new Promise((resolve) => {
      const w = this.d.client.watch().key(key).only('delete').withPreviousKV().startRevision(String(fromRev)).watcher();
      const finish = (how: 'released' | 'deleted' | 'recheck') => {
        recheck.cancel();
        signal.removeEventListener('abort', onAbort);
        w.removeAllListeners('delete');
        void w.cancel().catch(() => undefined);
        resolve(how);
      };
      const onAbort = () => finish('recheck');
      // A watch on an etcd member that stopped answering would wait forever: look again after a while.
      const recheck = this.d.timers.setTimeout(() => finish('recheck'), Math.max(500, (this.ttlS * 1000) / 2));
      signal.addEventListener('abort', onAbort);
      w.on('delete', (_kv: IKeyValue, prev?: IKeyValue) => finish(prev && isReleased(prev) ? 'released' : 'deleted'));
      w.on('error', () => finish('recheck'));
    });
  }

  // ---- tenure ---------------------------------------------------------------------------------------------------

  private becomeLeader(t: Tenure): void {
    this.leading = t;
    this.d.logger.log(`this node (${this.d.self.id}) is the leader (term ${t.rev})`);
    this.notify();
    this.setLease(true);
  }

  /** The session can no longer lead: end the tenure, drop the lease, and campaign anew with a fresh one. */
  private endSession(session: SessionLease, why: string): void {
    const cur = this.current;
    if (!cur || cur.session !== session) return;
    this.current = null;
    this.endTenure(why);
    cur.abort.abort();
    // Never resume a lapsed lease.
    void this.release(session);
  }

  /**
   * After the tenure ended: marks the own key released (so the next leader need not wait out takeoverDelayMs), then
   * revokes the lease. Both best effort: the lease expires by itself otherwise.
   */
  private async release(session: SessionLease): Promise<void> {
    // ignoreLease: keeps the key on its lease, and fails instead of creating a key that is already gone.
    const value = JSON.stringify({ ...this.valueFor(session), released: true });
    await this.d.client
      .put(this.d.keys.electionKey(session.id))
      .value(value)
      .ignoreLease()
      .options(callOptions(this.d.requestTimeoutMs))
      .exec()
      .catch(() => undefined);
    await session.revoke();
  }

  /** While leading: the observer's linearizable view no longer holds the own key (etcd revoked the lease). */
  private checkOwnKey(): void {
    const t = this.leading;
    const seen = this.observer.current();
    if (!t || !seen || seen.header <= t.rev) return;
    if (seen.firstRev === null || seen.firstRev > t.rev) this.endSession(t.session, 'etcd deleted its election key');
  }

  private endTenure(why: string): void {
    this.crashTimer?.cancel();
    this.crashTimer = null;
    const was = this.leading;
    this.leading = null;
    // Work stops first (the lease), then the role.
    this.setLease(false);
    if (was) this.d.logger.warn(`this node (${this.d.self.id}) stopped leading (term ${was.rev}): ${why}`);
    this.notify();
  }

  private setLease(valid: boolean): void {
    if (this.leaseValid === valid) return;
    this.leaseValid = valid;
    for (const fn of [...this.leaseListeners]) this.call(() => fn(valid));
  }

  private notify(): void {
    const next = this.leadership;
    const prev = this.emitted;
    if (prev.isLeader === next.isLeader && prev.leaderId === next.leaderId && prev.term === next.term) return;
    this.emitted = next;
    if (!next.isLeader && next.leaderId && next.leaderId !== prev.leaderId) this.d.logger.log(`leader is ${next.leaderId} (term ${next.term})`);
    for (const fn of [...this.leadershipListeners]) this.call(() => fn(next));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.d.logger.error(`an etcd election listener threw: ${(e as Error).message}`);
    }
  }
}
