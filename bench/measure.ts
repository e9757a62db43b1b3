/** Measurements as printed and stored: latency summaries, round statistics and writer gaps, for ours and etcd alike. */
import { percentile } from '../test/support/process-cluster.js';

export { percentile };

/** One measurement as printed and stored under its metric name (one side of it: ours or etcd). */
export type Measurement = Record<string, number | string | boolean | null | number[]>;

export function round(x: number, digits = 3): number {
  return Number.isFinite(x) ? Number(x.toFixed(digits)) : x;
}

/** Throughput and latency quantiles of a timed load; `latenciesUs` in µs, times in epoch ms. */
export function throughput(latenciesUs: readonly number[], startedAt: number, endedAt: number, errors: number): Measurement {
  const seconds = (endedAt - startedAt) / 1000;
  const ms = (p: number): number => round(percentile(latenciesUs, p) / 1000);
  return {
    ops: latenciesUs.length,
    seconds: round(seconds),
    opsPerSec: Math.round(latenciesUs.length / seconds),
    p50Ms: ms(0.5),
    p90Ms: ms(0.9),
    p99Ms: ms(0.99),
    p999Ms: ms(0.999),
    maxMs: ms(1),
    errors,
  };
}

/** Median, max and every value of a series of rounds, in ms. */
export function rounds(xs: readonly number[]): Measurement {
  return {
    rounds: xs.length,
    medianMs: round(percentile(xs, 0.5), 1),
    maxMs: round(Math.max(...xs), 1),
    minMs: round(Math.min(...xs), 1),
    roundsMs: xs.map((x) => round(x, 1)),
  };
}

/** A stretch between two consecutive acknowledgements of one writer, epoch ms. */
export interface Gap {
  readonly gap: number;
  readonly from: number;
  readonly to: number;
}

/** Every stretch between consecutive acknowledgements of one writer, from the load's start to its end. */
export function gapsOf(startedAt: number, ackTimes: readonly number[], endedAt: number): Gap[] {
  const times = [startedAt, ...ackTimes, endedAt];
  return times.slice(1).map((t, i) => ({ gap: t - times[i]!, from: times[i]!, to: t }));
}

export function longest(gs: readonly Gap[]): Gap {
  return gs.reduce((a, b) => (b.gap > a.gap ? b : a), { gap: 0, from: 0, to: 0 });
}

/** Prints one measurement as a JSON line. */
export function emit(bench: string, metric: string, m: Measurement): void {
  process.stdout.write(`${JSON.stringify({ bench, metric, ...m })}\n`);
}
