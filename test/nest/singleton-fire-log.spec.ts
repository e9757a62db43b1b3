/** What a skipped fire logs: verbose on a follower (every fire is skipped there), a warning only for the leader's own failures. */
import type { Logger } from '@nestjs/common';
import type { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator';
import type { FireOutcome } from '../../lib/cluster/task-ledger';
import { runSingletonFire } from '../../lib/nest/services/singleton-fire';

function capture() {
  const lines: Record<'log' | 'warn' | 'verbose' | 'debug', string[]> = { log: [], warn: [], verbose: [], debug: [] };
  const logger = {
    log: (m: string) => lines.log.push(m),
    warn: (m: string) => lines.warn.push(m),
    verbose: (m: string) => lines.verbose.push(m),
    debug: (m: string) => lines.debug.push(m),
  } as unknown as Logger;
  return { lines, logger };
}

const clusterWith = (outcome: FireOutcome) =>
  ({ leaderId: 'n1', tasks: { runOnce: async () => outcome } }) as unknown as ClusterCoordinator;

test.each([
  [{ ran: false, reason: 'not-leader' } as FireOutcome, 'verbose', /not run here \(n1 leads\)/],
  [{ ran: false, reason: 'duplicate' } as FireOutcome, 'verbose', /already run/],
  [{ ran: false, reason: 'lease-lost' } as FireOutcome, 'warn', /lease ended/],
  [{ ran: false, reason: 'unrecorded', detail: 'timeout' } as FireOutcome, 'warn', /could not be recorded \(timeout\)/],
])('%o logs at %s', async (outcome, level, text) => {
  const { lines, logger } = capture();
  await runSingletonFire(clusterWith(outcome), 'report', 0, () => undefined, logger);
  expect(lines[level as 'verbose' | 'warn']).toEqual([expect.stringMatching(text)]);
  expect(Object.values(lines).flat()).toHaveLength(1);
});
