/**
 * Teardown that must happen even when a benchmark dies or is interrupted: node and etcd processes killed, data dirs
 * removed. Hooks run synchronously on process exit; run.ts turns SIGINT and SIGTERM into an exit.
 */
import { rmSync } from 'node:fs';
import type { ProcessCluster } from '../test/support/process-cluster.js';

const hooks = new Set<() => void>();

process.on('exit', () => {
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // the next hook still runs: one process already gone must not leave the others behind
    }
  }
});

/** Runs `fn` at exit unless the returned function is called first (after an orderly teardown). */
export function atExit(fn: () => void): () => void {
  hooks.add(fn);
  return () => hooks.delete(fn);
}

/** Kills the cluster's node processes and removes its data dirs at exit, if `destroy()` did not run. */
export function guardCluster(c: ProcessCluster): () => void {
  return atExit(() => {
    for (const n of c.nodes) if (n.pid !== undefined && n.running) process.kill(n.pid, 'SIGKILL');
    rmSync(c.dataRoot, { recursive: true, force: true });
  });
}
