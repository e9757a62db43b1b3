/** The targets the design sets for this 2-core machine, checked against a run's results. */
import type { Measurement } from './measure.js';
import type { MetricEntry } from './results.js';

export interface Target {
  readonly metric: string;
  readonly text: string;
  /** Undefined when the run did not measure what the target needs. */
  readonly met: (e: MetricEntry) => boolean | undefined;
}

function n(m: Measurement | undefined, key: string): number | undefined {
  const v = m?.[key];
  return typeof v === 'number' ? v : undefined;
}

/** All of `checks` hold; undefined if any could not be checked. */
function all(...checks: (boolean | undefined)[]): boolean | undefined {
  return checks.includes(undefined) ? undefined : checks.every(Boolean);
}

function atMost(v: number | undefined, limit: number): boolean | undefined {
  return v === undefined ? undefined : v <= limit;
}

export const TARGETS: readonly Target[] = [
  { metric: 'writes_c1', text: '≥ 3× etcd, p50 ≤ 1 ms', met: (e) => all(e.ratio === undefined ? undefined : e.ratio >= 3, atMost(n(e.ours, 'p50Ms'), 1)) },
  { metric: 'writes_c256', text: '≥ 2× etcd, p99 ≤ 50 ms', met: (e) => all(e.ratio === undefined ? undefined : e.ratio >= 2, atMost(n(e.ours, 'p99Ms'), 50)) },
  { metric: 'failover_ms', text: 'median ≤ 250 ms, max ≤ 400 ms', met: (e) => all(atMost(n(e.ours, 'medianMs'), 250), atMost(n(e.ours, 'maxMs'), 400)) },
  { metric: 'graceful_pause_ms', text: 'every round ≤ 30 ms', met: (e) => atMost(n(e.ours, 'maxMs'), 30) },
  {
    metric: 'event_fanout_ms',
    text: 'p50 ≤ 2 ms, p99 ≤ 10 ms',
    met: (e) => all(atMost(n(e.ours, 'p50Ms'), 2), atMost(n(e.ours, 'p99Ms'), 10), n(e.ours, 'undelivered') === undefined ? undefined : n(e.ours, 'undelivered') === 0),
  },
  { metric: 'singleton_handoff_ms', text: 'median ≤ 300 ms', met: (e) => atMost(n(e.ours, 'medianMs'), 300) },
  {
    metric: 'writer_max_gap_large_state',
    text: '≤ 20 ms at 200 000 keys or more, with a snapshot in the window',
    met: (e) => ((n(e.ours, 'keysBefore') ?? 0) < 200_000 ? undefined : atMost(n(e.ours, 'maxGapMs'), 20)),
  },
  { metric: 'rss_growth_mb', text: '≤ 50 MB over 1M writes', met: (e) => ((n(e.ours, 'writes') ?? 0) < 1_000_000 ? undefined : atMost(n(e.ours, 'growthMb'), 50)) },
];

export function targetFor(metric: string): Target | undefined {
  return TARGETS.find((t) => t.metric === metric);
}
