import type { Timers } from '../io/clock.js';
import type { LeadershipSource } from './backend.js';

/**
 * Resolves after `ms`, or sooner when a leader is elected or this node's lease becomes valid: a retry loop backs off
 * with it and still goes again the moment there is somewhere to send to, so a failover costs the caller the election
 * and no backoff step on top.
 */
export function pauseUntilLeaderElected(runtime: LeadershipSource, timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      timer.cancel();
      stopLeader();
      stopLease();
      resolve();
    };
    const timer = timers.setTimeout(done, ms);
    const stopLeader = runtime.onLeadershipChange((s) => s.leaderId && done());
    const stopLease = runtime.onLeaseChange((valid) => valid && done());
  });
}
