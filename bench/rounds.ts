/**
 * The failover and graceful-stop rounds, as both sides report them: how the first write after a kill -9 is found,
 * and how the pause around a graceful stop is read from the writers' acknowledgements.
 */
import { epochMs } from '../test/support/node-protocol.js';
import { sleep } from '../test/support/process-cluster.js';
import { gapsOf, longest } from './measure.js';

export interface FailoverRound {
  /** ms from the SIGKILL until the first write sent to a survivor after the process was gone was acknowledged. */
  readonly ms: number;
  /** ms from the SIGKILL until a survivor answered a status poll as leader. */
  readonly electedMs: number;
  readonly killed: string;
  readonly firstCommitOn: string;
}

export interface GracefulRound {
  /** The longest stretch without an ack that overlaps the handover (from the SIGTERM until the process exited). */
  readonly pauseMs: number;
  /** Where it began and ended, ms after the SIGTERM. */
  readonly pauseFromMs: number;
  readonly pauseToMs: number;
  /** The longest stretch without an ack anywhere in the load. */
  readonly loadMaxGapMs: number;
  /** The same for the same writers while nobody stops. */
  readonly baselineMaxGapMs: number;
  readonly sigtermToExitMs: number;
  readonly errors: number;
}

/** One writer's acknowledgements, epoch ms. */
export interface WriterTrace {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly ackAt: readonly number[];
}

/** Probe attempts every this many ms on each survivor after a kill -9. */
export const PROBE_EVERY_MS = 10;

/**
 * Starts `attempt(target, n)` on every target every PROBE_EVERY_MS until one is acknowledged: the time (epoch ms)
 * and target of the first acknowledgement. A fresh attempt every few ms measures when the survivors can commit again,
 * not a client's retry schedule. Every attempt is settled (each bounded by its own timeout) before it returns.
 */
export async function firstCommit<T>(
  targets: readonly T[],
  timeoutMs: number,
  attempt: (target: T, n: number) => Promise<unknown>,
): Promise<{ at: number; target: T }> {
  const pending: Promise<unknown>[] = [];
  /** Acknowledgements in the order they came. */
  const acked: { at: number; target: T }[] = [];
  const deadline = performance.now() + timeoutMs;
  for (let n = 0; acked.length === 0; n++) {
    if (performance.now() > deadline) {
      await Promise.all(pending);
      throw new Error(`no write was acknowledged within ${timeoutMs} ms`);
    }
    for (const t of targets) {
      pending.push(
        attempt(t, n).then(
          () => acked.push({ at: epochMs(), target: t }),
          () => undefined,
        ),
      );
    }
    await sleep(PROBE_EVERY_MS);
  }
  await Promise.all(pending);
  return acked[0]!;
}

/**
 * The pause a graceful stop caused: the longest stretch without an ack, over all `loads`, that overlaps the stop
 * (from `t0`, the SIGTERM, for `sigtermToExitMs`), next to the longest anywhere and the baseline's longest.
 */
export function gracefulPause(loads: readonly WriterTrace[], baseline: readonly WriterTrace[], t0: number, sigtermToExitMs: number, errors: number): GracefulRound {
  const all = loads.flatMap((w) => gapsOf(w.startedAt, w.ackAt, w.endedAt));
  const handover = longest(all.filter((g) => g.to >= t0 && g.from <= t0 + sigtermToExitMs));
  return {
    pauseMs: handover.gap,
    pauseFromMs: handover.from - t0,
    pauseToMs: handover.to - t0,
    loadMaxGapMs: longest(all).gap,
    baselineMaxGapMs: longest(baseline.flatMap((w) => gapsOf(w.startedAt, w.ackAt, w.endedAt))).gap,
    sigtermToExitMs,
    errors,
  };
}
