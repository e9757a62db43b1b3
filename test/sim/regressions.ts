/**
 * Seeds that once exposed a bug, each replayable with `npm run sim -- --seed S --nodes N [--level runtime] [--membership]`. They are found by putting
 * the bug back and running the current generator, so they keep testing the fix while the generator stays as it is;
 * when the generator changes, find new ones the same way.
 */
export interface RegressionSeed {
  readonly seed: number;
  readonly nodes: number;
  readonly level?: 'core' | 'runtime';
  /** A membership simulation (`--membership`). */
  readonly membership?: boolean;
  readonly bug: string;
}

export const REGRESSION_SEEDS: readonly RegressionSeed[] = [
  { seed: 15, nodes: 5, bug: 'a lost App left the inflight window full and replication to that follower stopped for good' },
  { seed: 12, nodes: 3, bug: 'a lost App left the inflight window full and replication to that follower stopped for good' },
  { seed: 303, nodes: 5, bug: 'snapshot chunks reordered by the network were dropped, so a lagging follower never caught up' },
  { seed: 1426, nodes: 3, bug: 'snapshot chunks reordered by the network were dropped, so a lagging follower never caught up' },
  { seed: 2121, nodes: 5, bug: 'harness: a crash scheduled during the faults landed in the calm phase, where nothing restarts the node' },
  { seed: 352, nodes: 3, bug: 'harness: a crash scheduled during the faults landed in the calm phase, where nothing restarts the node' },
  {
    seed: 40208,
    nodes: 3,
    level: 'runtime',
    bug: 'a lock re-armed its expiry timer for a sliver of time that did not move the clock on: the same instant forever',
  },
  {
    seed: 43692,
    nodes: 3,
    level: 'runtime',
    bug: 'a lock re-armed its expiry timer for a sliver of time that did not move the clock on: the same instant forever',
  },
  {
    seed: 20659,
    nodes: 5,
    level: 'runtime',
    bug: 'compaction ran while a snapshot from the leader was received but not yet installed: no term for the index, the node stopped',
  },
  {
    seed: 607,
    nodes: 5,
    level: 'runtime',
    bug: 'compaction ran while a snapshot from the leader was received but not yet installed: no term for the index, the node stopped',
  },
  {
    seed: 138,
    nodes: 3,
    level: 'runtime',
    bug: 'a retry loop paused for the sliver of time left before its deadline, which did not move the clock: the same instant forever',
  },
  {
    seed: 1,
    nodes: 3,
    level: 'runtime',
    membership: true,
    bug: 'harness: the event check read a configuration entry of the log as an event payload and threw',
  },
  {
    seed: 1008,
    nodes: 3,
    membership: true,
    bug: 'a node that joined and replicated from index 1 did not know the configuration below the entry that added it, so its snapshots carried none',
  },
];
