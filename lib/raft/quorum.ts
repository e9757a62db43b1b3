/** Majority helpers for a single voter set (joint configurations come with membership changes). */

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The largest value that a majority has reached, e.g. the highest index a majority has matched. */
export function majorityValue(values: readonly number[]): number {
  return majorityValueInPlace([...values]);
}

/**
 * majorityValue of `values`, which it reorders. For a caller that fills a scratch array: the leader asks on every
 * acknowledgement it receives, and sort() allocates even for three values.
 */
export function majorityValueInPlace(values: number[]): number {
  const n = values.length;
  if (n === 0) return 0;
  // Insertion sort, largest first: there are only as many values as voters.
  for (let i = 1; i < n; i++) {
    const x = values[i]!;
    let j = i - 1;
    for (; j >= 0 && values[j]! < x; j--) values[j + 1] = values[j]!;
    values[j + 1] = x;
  }
  return values[quorumSize(n) - 1]!;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

export function voteOutcome(voters: number, granted: number, rejected: number): VoteOutcome {
  const q = quorumSize(voters);
  if (granted >= q) return 'won';
  if (rejected > voters - q) return 'lost';
  return 'pending';
}
