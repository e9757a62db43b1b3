/**
 * bench/results/latest.json: an object keyed by metric, each `{ ours, etcd?, ratio? }`. A run replaces the metrics it
 * measured (both sides and the ratio together) and keeps the others.
 *
 * `ratio` is ours / etcd: of throughput (opsPerSec, higher is better for us) for throughput metrics, and of the
 * median latency (medianMs, or p50Ms) for metrics named `*_ms` (lower is better for us).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Measurement } from './measure.js';

export interface MetricEntry {
  readonly ours: Measurement;
  readonly etcd?: Measurement;
  readonly ratio?: number;
}

export type Results = Record<string, MetricEntry>;

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Whether a metric's ratio compares latencies (lower is better for us) rather than throughput. */
export function isLatencyMetric(metric: string): boolean {
  return metric.endsWith('_ms');
}

/** The number the ratio compares, on one side. */
export function headline(metric: string, m: Measurement): number | undefined {
  const v = isLatencyMetric(metric) ? (m.medianMs ?? m.p50Ms) : m.opsPerSec;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function ratioOf(metric: string, ours: Measurement, etcd: Measurement | undefined): number | undefined {
  const a = headline(metric, ours);
  const b = etcd && headline(metric, etcd);
  return a !== undefined && b !== undefined && b > 0 ? Number((a / b).toFixed(2)) : undefined;
}

/** The stored results; {} when there are none yet. A file that is not a results object is an error, not overwritten. */
export function readResults(file: string): Results {
  if (!fs.existsSync(file)) return {};
  const text = fs.readFileSync(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); move it away to start afresh`);
  }
  if (!isRecord(parsed)) throw new Error(`${file} must hold an object keyed by metric`);
  const out: Results = {};
  for (const [metric, entry] of Object.entries(parsed)) {
    if (!isRecord(entry) || !isRecord(entry.ours)) throw new Error(`${file}: metric ${metric} has no "ours" object`);
    out[metric] = entry as unknown as MetricEntry;
  }
  return out;
}

/** `previous` with every metric in `fresh` replaced, the metadata added to each side and the ratio computed. */
export function mergeResults(
  previous: Results,
  fresh: Record<string, { ours: Measurement; etcd?: Measurement }>,
  meta: Measurement,
  etcdMeta: Measurement,
): Results {
  const out: Results = { ...previous };
  for (const [metric, { ours, etcd }] of Object.entries(fresh)) {
    const ratio = ratioOf(metric, ours, etcd);
    out[metric] = {
      ours: { ...ours, ...meta },
      ...(etcd && { etcd: { ...etcd, ...meta, ...etcdMeta } }),
      ...(ratio !== undefined && { ratio }),
    };
  }
  return out;
}

export function writeResults(file: string, results: Results): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}
