/** Helpers for the leader-work checks' violation messages. */

/** At most `max` messages of one kind, then how many more there were: a broken run must not bury the summary. */
export function capped(messages: readonly string[], max = 10): string[] {
  return messages.length <= max ? [...messages] : [...messages.slice(0, max), `… and ${messages.length - max} more like the above`];
}

/** A time on the history's clock (ms since the run began). */
export const ms = (t: number): string => t.toFixed(1);

/** A list of numbers, the first `max` of them. */
export function some(xs: readonly number[], max = 10): string {
  return xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')} … (${xs.length} in all)`;
}
