/**
 * The @SingletonTask steps against the effect logs (pure: no I/O). A run is one token (the log index of its ledger
 * entry); its steps are lines written after it asked whether it still leads.
 *
 * - At most once per fire time: every step of a fire time comes from one run, and a token belongs to one run (one
 *   node, one fire time).
 * - Runs do not overlap beyond the clock bound: for runs A and B on different nodes with token(A) < token(B), no step
 *   of A is later than B's first step by more than `toleranceMs`. A step's time is read just before the check
 *   (!signal.aborted && hasLease()) that allows it, so it is a moment A held a lease, and B's first step comes after
 *   B's node got its lease; the leases of two leaders never overlap as long as the monotonic clocks keep within the
 *   drift bound (the nemesis keeps them in 0.95–1.05, the bound is 0.1). The tolerance only absorbs comparing
 *   epochMs() across processes, as for the lock beliefs.
 */
import type { EffectLine, StepLine } from './effect-log.js';
import { capped, ms } from './violations.js';

export interface FireCheckResult {
  readonly violations: string[];
  /** Fire times with at least one step. */
  readonly fires: number;
  /** Tokens with at least one step. */
  readonly runs: number;
  readonly steps: number;
  /** Runs that took fewer steps than they planned: stopped by their signal or lease, or their node died. */
  readonly stoppedEarly: number;
  /** The smallest gap between a run's first step and the last step of an older run on another node, ms. */
  readonly minHandOverGapMs: number | null;
}

interface Run {
  readonly token: number;
  readonly first: StepLine;
  last: StepLine;
  /** The highest step number seen. */
  reached: number;
}

export function checkFires(lines: readonly EffectLine[], toleranceMs: number): FireCheckResult {
  const steps = lines.filter((l): l is StepLine => l.type === 'step');
  const runs = new Map<number, Run>();
  const tokensOf = new Map<number, Set<number>>();
  const mixed: string[] = [];
  for (const s of steps) {
    const run = runs.get(s.token);
    if (!run) runs.set(s.token, { token: s.token, first: s, last: s, reached: s.step });
    else {
      if (run.first.node !== s.node || run.first.fireTime !== s.fireTime) mixed.push(`token ${s.token} belongs to two runs: ${show(run.first)} and ${show(s)}`);
      if (s.at > run.last.at) run.last = s;
      run.reached = Math.max(run.reached, s.step);
    }
    const tokens = tokensOf.get(s.fireTime) ?? new Set<number>();
    tokens.add(s.token);
    tokensOf.set(s.fireTime, tokens);
  }
  const twice: string[] = [];
  for (const [fireTime, tokens] of tokensOf) {
    if (tokens.size > 1) twice.push(`fire time ${fireTime} ran ${tokens.size} times: ${[...tokens].map((t) => show(runs.get(t)!.first)).join('; ')}`);
  }
  const { overlaps, minGap } = overlapsOf([...runs.values()], toleranceMs);
  const stoppedEarly = [...runs.values()].filter((r) => r.reached < r.first.of).length;
  return {
    violations: [...capped(mixed), ...capped(twice), ...capped(overlaps)],
    fires: tokensOf.size,
    runs: runs.size,
    steps: steps.length,
    stoppedEarly,
    minHandOverGapMs: minGap === null ? null : Math.round(minGap * 10) / 10,
  };
}

/** Sweeps the runs in token order, keeping each node's latest step so far. */
function overlapsOf(runs: Run[], toleranceMs: number): { overlaps: string[]; minGap: number | null } {
  runs.sort((a, b) => a.token - b.token);
  const latest = new Map<string, Run>();
  const overlaps: string[] = [];
  let minGap: number | null = null;
  for (const b of runs) {
    for (const [node, a] of latest) {
      if (node === b.first.node) continue;
      const gap = b.first.at - a.last.at;
      minGap = minGap === null ? gap : Math.min(minGap, gap);
      if (gap < -toleranceMs) {
        overlaps.push(`${show(a.last)} came ${ms(-gap)} ms after the newer run's first step, ${show(b.first)}`);
      }
    }
    const mine = latest.get(b.first.node);
    if (!mine || b.last.at > mine.last.at) latest.set(b.first.node, b);
  }
  return { overlaps, minGap };
}

const show = (s: StepLine): string => `step ${s.step}/${s.of} of fire time ${s.fireTime} with token ${s.token} (term ${s.term}) on ${s.node} at ${ms(s.at)}`;
