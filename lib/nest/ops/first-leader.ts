import { filter, take } from 'rxjs';
import type { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';

export interface FirstLeaderLog {
  /** A leader is known for the first time. */
  ready(message: string): void;
  /** None was known `timeoutMs` after the watch began. */
  late(message: string): void;
}

export interface FirstLeaderWatch {
  /** Ends the watch: neither message comes after this, and no timer is left behind. */
  stop(): void;
}

/**
 * Says once, when this node first learns of a leader, who it is; warns once if none is known after `timeoutMs` (0: no
 * warning). Nothing waits on it, so bootstrap (and `app.listen`) goes on at once.
 */
export function watchFirstLeader(cluster: ClusterCoordinator, timeoutMs: number, log: FirstLeaderLog): FirstLeaderWatch {
  let timer: NodeJS.Timeout | null = null;
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  // leadership$ starts with the current state: a leader known already is reported during subscribe().
  const subscription = cluster.leadership$.pipe(filter((s) => s.leaderId !== ''), take(1)).subscribe((s) => {
    stopTimer();
    const who = s.leaderId === cluster.nodeId ? 'this node leads' : `the leader is ${s.leaderId}`;
    log.ready(`cluster ready: ${who} (${cluster.status().backend} backend, term ${s.term}; members ${cluster.members.map((m) => m.id).join(', ')})`);
  });
  if (timeoutMs > 0 && !subscription.closed) {
    timer = setTimeout(() => {
      timer = null;
      log.late(`no leader after ${timeoutMs} ms; starting anyway. Commands wait for one; ${cluster.leaderlessHint()}`);
    }, timeoutMs);
    timer.unref(); // a warning is no reason to keep the process alive
  }
  return {
    stop: () => {
      stopTimer();
      subscription.unsubscribe();
    },
  };
}
