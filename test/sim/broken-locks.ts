import { LockModule, type LockHolder } from '../../lib/cluster/state/lock-module.js';

/**
 * Deliberately broken lock tables for the checker self-test: the runtime-level simulator must catch each one with
 * the check that guards its rule.
 */

/** Ends every lease at a quarter of its length, before the holder renews: the lock moves on while it is still relied on. */
class ExpiresEarly extends LockModule {
  protected override leaseEnd(h: LockHolder): number {
    return h.renewedAt + h.leaseMs / 4;
  }
}

/** Uses the grant's wall-clock time, to the second, as the fencing token: two grants can share one. */
class WallClockTokens extends LockModule {
  protected override tokenFor(_index: number, entryTime: number): number {
    return Math.floor(entryTime / 1000);
  }
}

export const BROKEN_LOCKS: Readonly<Record<string, () => LockModule>> = {
  'expires-early': () => new ExpiresEarly(),
  'wall-clock-tokens': () => new WallClockTokens(),
};
