import type { Logger } from '@nestjs/common';
import type { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import type { TaskRunContext } from '../../cluster/task-ledger.js';

/**
 * One fire of a scheduled singleton task (TaskLedger.runOnce): the body runs only on the leader with a valid lease,
 * once per fire time cluster-wide, fenced by its ledger entry, with the run's signal and token. Elsewhere (including
 * "no leader yet" at startup) it does nothing. A failing body's error is rethrown for the scheduler to log as usual.
 */
export async function runSingletonFire(
  cluster: ClusterCoordinator,
  task: string,
  fireTime: number,
  body: (run: TaskRunContext) => unknown,
  logger: Logger,
): Promise<void> {
  const when = new Date(fireTime).toISOString();
  const r = await cluster.tasks.runOnce(task, fireTime, body);
  if (!r.ran) {
    const why = {
      'not-leader': () => (cluster.leaderId ? `${cluster.leaderId} leads` : 'no leader yet'),
      duplicate: () => 'already run',
      evicted: () => 'older than the runs the ledger keeps',
      skipped: () => 'recorded as skipped',
      'lease-lost': () => 'the lease ended before the body started; the next leader marks the run abandoned',
      unrecorded: () => `its start could not be recorded (${r.detail})`,
    }[r.reason]();
    // A follower passes over every fire, which is the point: only the two failures of the leader itself are news.
    if (r.reason === 'unrecorded' || r.reason === 'lease-lost') logger.warn(`${task} @ ${when}: not run here (${why})`);
    else logger.verbose(`${task} @ ${when}: not run here (${why})`);
    return;
  }
  if ('error' in r) throw r.error;
}
