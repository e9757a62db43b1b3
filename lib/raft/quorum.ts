/** Majority helpers for a single voter set (joint configurations come with membership changes). */

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The largest value that a majority has reached, e.g. the highest index a majority has matched. */
export function majorityValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[quorumSize(values.length) - 1]!;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

export function voteOutcome(voters: number, granted: number, rejected: number): VoteOutcome {
  const q = quorumSize(voters);
  if (granted >= q) return 'won';
  if (rejected > voters - q) return 'lost';
  return 'pending';
}
