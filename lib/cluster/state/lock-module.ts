import type { ApplyContext, StateModule } from './state-module.js';

export type LockCommand =
  /**
   * Take `name` for `leaseMs`, or queue for up to `waitMs` (0: do not queue). `retry` marks a waiter's periodic
   * re-proposal: it only settles expiry and reports, never queues or grants a request that is no longer waiting (a
   * late retry must not grab the lock again after its owner released it).
   */
  | {
      readonly op: 'acquire';
      readonly name: string;
      readonly owner: string;
      readonly requestId: string;
      readonly leaseMs: number;
      readonly waitMs: number;
      readonly retry?: boolean;
    }
  | { readonly op: 'renew'; readonly name: string; readonly owner: string; readonly token: number }
  | { readonly op: 'release'; readonly name: string; readonly owner: string; readonly token: number }
  /** A waiter gave up: leave the queue, or give the lock back if it was granted meanwhile. */
  | { readonly op: 'cancel'; readonly name: string; readonly owner: string; readonly requestId: string }
  /** Settles expiry of every lock (and grants to waiters) at this entry's time. */
  | { readonly op: 'tick' };

export interface LockHolder {
  readonly owner: string;
  readonly requestId: string;
  /** Fencing token: the log index of the granting entry. */
  readonly token: number;
  readonly grantedAt: number;
  renewedAt: number;
  readonly leaseMs: number;
}

export interface LockWaiter {
  readonly owner: string;
  readonly requestId: string;
  readonly leaseMs: number;
  /** Entry time after which the waiter is dropped from the queue. */
  readonly waitUntil: number;
}

export type AcquireResult =
  | { readonly granted: true; readonly token: number; readonly index: number; readonly expiresAt: number }
  /** `position` in the queue (0 = next), -1 when not queued. */
  | { readonly granted: false; readonly queued: boolean; readonly position: number };

export type LockResult = AcquireResult | { readonly ok: boolean; readonly expiresAt?: number } | undefined;

interface LockState {
  holder: LockHolder | null;
  waiters: LockWaiter[];
}

/**
 * Replicated locks with leases, fencing tokens and FIFO waiters. Time is the entry time the leader wrote, kept from
 * going backwards (a new leader's clock may be behind the old one's), never the applying node's clock: every node
 * expires the same lease at the same entry. A lease lapses only when some entry is applied after it ends; the
 * clients' waiters re-propose periodically, so a dead holder's lock moves on after its TTL.
 */
export class LockModule implements StateModule<LockCommand, LockResult> {
  readonly name = 'lock';
  private locks = new Map<string, LockState>();
  /** Latest entry time seen. */
  private now = 0;

  holder(name: string): Readonly<LockHolder> | undefined {
    return this.locks.get(name)?.holder ?? undefined;
  }

  waiters(name: string): readonly Readonly<LockWaiter>[] {
    return this.locks.get(name)?.waiters ?? [];
  }

  names(): string[] {
    return [...this.locks.keys()];
  }

  apply(cmd: LockCommand, ctx: ApplyContext): LockResult {
    this.now = Math.max(this.now, ctx.time);
    if (cmd.op === 'tick') {
      for (const name of [...this.locks.keys()]) this.settle(name, ctx.index);
      return undefined;
    }
    this.settle(cmd.name, ctx.index);
    switch (cmd.op) {
      case 'acquire':
        return this.acquire(cmd, ctx.index);
      case 'renew': {
        const h = this.holder(cmd.name);
        if (!h || h.token !== cmd.token || h.owner !== cmd.owner) return { ok: false };
        this.locks.get(cmd.name)!.holder!.renewedAt = this.now;
        return { ok: true, expiresAt: this.leaseEnd(h) };
      }
      case 'release': {
        const s = this.locks.get(cmd.name);
        if (!s?.holder || s.holder.token !== cmd.token || s.holder.owner !== cmd.owner) return { ok: false };
        s.holder = null;
        this.settle(cmd.name, ctx.index);
        return { ok: true };
      }
      case 'cancel': {
        const s = this.locks.get(cmd.name);
        if (!s) return { ok: false };
        if (s.holder?.requestId === cmd.requestId && s.holder.owner === cmd.owner) {
          s.holder = null;
          this.settle(cmd.name, ctx.index);
          return { ok: true };
        }
        const before = s.waiters.length;
        s.waiters = s.waiters.filter((w) => w.requestId !== cmd.requestId);
        this.settle(cmd.name, ctx.index);
        return { ok: s.waiters.length < before };
      }
    }
  }

  private acquire(cmd: Extract<LockCommand, { op: 'acquire' }>, index: number): AcquireResult {
    let s = this.locks.get(cmd.name);
    if (s?.holder?.requestId === cmd.requestId) return this.granted(s.holder, index);
    const position = s ? s.waiters.findIndex((w) => w.requestId === cmd.requestId) : -1;
    if (position >= 0) return { granted: false, queued: true, position };
    if (cmd.retry) return { granted: false, queued: false, position: -1 };
    if (!s) {
      s = { holder: null, waiters: [] };
      this.locks.set(cmd.name, s);
    }
    if (!s.holder) {
      // settle() leaves no lock free while someone waits, so a free lock here has an empty queue.
      s.holder = this.grant(cmd, index);
      return this.granted(s.holder, index);
    }
    if (cmd.waitMs <= 0) return { granted: false, queued: false, position: -1 };
    s.waiters.push({ owner: cmd.owner, requestId: cmd.requestId, leaseMs: cmd.leaseMs, waitUntil: this.now + cmd.waitMs });
    return { granted: false, queued: true, position: s.waiters.length - 1 };
  }

  /** Expires the holder's lease and stale waiters as of `now`, then grants to the head of the queue. */
  private settle(name: string, index: number): void {
    const s = this.locks.get(name);
    if (!s) return;
    if (s.holder && this.now >= this.leaseEnd(s.holder)) s.holder = null;
    if (!s.holder) {
      s.waiters = s.waiters.filter((w) => w.waitUntil > this.now);
      const next = s.waiters.shift();
      if (next) s.holder = this.grant(next, index);
    }
    if (!s.holder && s.waiters.length === 0) this.locks.delete(name);
  }

  private grant(w: { owner: string; requestId: string; leaseMs: number }, index: number): LockHolder {
    return { owner: w.owner, requestId: w.requestId, token: this.tokenFor(index, this.now), grantedAt: this.now, renewedAt: this.now, leaseMs: w.leaseMs };
  }

  private granted(h: LockHolder, index: number): AcquireResult {
    return { granted: true, token: h.token, index, expiresAt: this.leaseEnd(h) };
  }

  /** Entry time at which the holder's lease ends. (Protected for the simulator's deliberately broken variants.) */
  protected leaseEnd(h: LockHolder): number {
    return h.renewedAt + h.leaseMs;
  }

  /** The fencing token of a grant made by the entry at `index`: the index itself, so it grows with every grant. */
  protected tokenFor(index: number, _entryTime: number): number {
    return index;
  }

  snapshot(): unknown {
    const names = [...this.locks.keys()].sort();
    return { now: this.now, locks: names.map((n) => [n, this.locks.get(n)!.holder, this.locks.get(n)!.waiters]) };
  }

  restore(image: unknown): void {
    const img = (image ?? {}) as { now?: number; locks?: [string, LockHolder | null, LockWaiter[]][] };
    this.now = img.now ?? 0;
    this.locks = new Map((img.locks ?? []).map(([n, holder, waiters]) => [n, { holder: holder ? { ...holder } : null, waiters: [...waiters] }]));
  }
}
