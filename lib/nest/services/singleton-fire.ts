import type { Logger } from '@nestjs/common';
import type { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';

/**
 * One fire of a scheduled singleton task: runs `body` only on the leader with a valid lease, and only if the ledger
 * has no run for this fire time yet; the run's start and outcome are recorded. Elsewhere (including "no leader yet"
 * at startup) it does nothing. A failing body's error is rethrown for the scheduler to log as usual.
 */
export async function runSingletonFire(
  cluster: ClusterCoordinator,
  task: string,
  fireTime: number,
  body: () => unknown,
  logger: Logger,
): Promise<void> {
  const when = new Date(fireTime).toISOString();
  if (!cluster.hasLease()) {
    logger.debug(`${task} @ ${when}: not run here (${cluster.leaderId ? `${cluster.leaderId} leads` : 'no leader yet'})`);
    return;
  }
  let started: boolean;
  try {
    const r = await cluster.tasks.start(task, fireTime);
    started = r.started;
    if (!started) logger.debug(`${task} @ ${when}: already run by ${r.run.node || 'an earlier leader'}`);
  } catch (e) {
    logger.warn(`${task} @ ${when}: skipped, its start could not be recorded (${(e as Error).message})`);
    return;
  }
  if (!started) return;
  const record = (outcome: 'ok' | 'error', error?: string) =>
    cluster.tasks.finish(task, fireTime, outcome, error).catch((e: Error) => logger.warn(`${task} @ ${when}: outcome not recorded (${e.message})`));
  try {
    await body();
  } catch (e) {
    await record('error', e instanceof Error ? e.message : String(e));
    throw e;
  }
  await record('ok');
}
