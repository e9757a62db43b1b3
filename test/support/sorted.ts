/** Position of the first element of ascending `xs` above `x` (xs.length when none is). */
export function firstAbove(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The elements of ascending `xs` strictly between `from` and `to`. */
export function between(xs: readonly number[], from: number, to: number): number[] {
  const found: number[] = [];
  for (let i = firstAbove(xs, from); i < xs.length && xs[i]! < to; i++) found.push(xs[i]!);
  return found;
}
