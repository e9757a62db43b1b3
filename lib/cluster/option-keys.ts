/**
 * Unknown option keys fail at startup: a misspelt key (`electionTimout`) would otherwise be ignored and its default
 * used without a word. The message names the closest valid key.
 */
export function unknownOptionProblem(options: object, valid: readonly string[]): string | null {
  const unknown = Object.keys(options).filter((k) => !valid.includes(k));
  if (unknown.length === 0) return null;
  return unknown
    .map((k) => {
      const near = closest(k, valid);
      return `catga-cluster option ${JSON.stringify(k)} is not an option${near ? `; did you mean ${JSON.stringify(near)}?` : ''}`;
    })
    .join('; ');
}

/** The valid key within a third of the key's length in edits (at least 2), the nearest first; null when none is. */
function closest(key: string, valid: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const v of valid) {
    const d = distance(key.toLowerCase(), v.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [v, d];
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours each cost 1. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
