/**
 * Jittered exponential backoff for reconnects: initial, doubling up to max, each delay spread by ±jitter so nodes that
 * lost a peer at the same moment do not redial in lockstep.
 */
export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
  /** Fraction of spread each way: 0.2 = ±20%. */
  readonly jitter?: number;
  /** Uniform in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 50;
    // Only the smaller id dials, so a restarted member waits for its peer's next attempt: keep that wait short.
    this.maxMs = options.maxMs ?? 250;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call doubles the base until it reaches max. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(base * (1 + this.jitter * (2 * this.random() - 1)));
  }

  /** After a connection succeeded: the next loss retries quickly again. */
  reset(): void {
    this.attempt = 0;
  }
}
