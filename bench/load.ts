/**
 * Concurrent timed loops in the benchmark process (the etcd side: its client runs here, as an application's would),
 * with the same bookkeeping as the node processes' writeLoad / readLoad.
 */
import { epochMs } from '../test/support/node-protocol.js';

export interface LoadResult {
  /** Latency of each successful operation, µs, in completion order. */
  readonly latencies: number[];
  readonly errors: number;
  readonly errorNames: Record<string, number>;
  readonly startedAt: number;
  readonly endedAt: number;
  /** Epoch ms of each success, per worker. */
  readonly ackAt: number[][];
}

/**
 * `workers` concurrent loops calling `op(worker, i)` until `durationMs` has passed. A failed call is counted and the
 * loop waits 1 ms before the next, so a server that fails fast is not spun on.
 */
export async function runLoad(workers: number, durationMs: number, op: (worker: number, i: number) => Promise<unknown>): Promise<LoadResult> {
  const latencies: number[] = [];
  const errorNames: Record<string, number> = {};
  const ackAt: number[][] = Array.from({ length: workers }, () => []);
  let errors = 0;
  const startedAt = epochMs();
  const end = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const t = performance.now();
        try {
          await op(w, i);
          const done = performance.now();
          latencies.push(Math.round((done - t) * 1000));
          ackAt[w]!.push(performance.timeOrigin + done);
        } catch (e) {
          errors++;
          const name = e instanceof Error ? e.name : 'unknown';
          errorNames[name] = (errorNames[name] ?? 0) + 1;
          await new Promise((res) => setTimeout(res, 1));
        }
      }
    }),
  );
  return { latencies, errors, errorNames, startedAt, endedAt: epochMs(), ackAt };
}
