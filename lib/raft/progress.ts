import { Inflights } from './inflights.js';

/**
 * The leader's view of one follower, as in etcd's tracker.Progress:
 * - probe: one App at a time until we learn where the logs match;
 * - replicate: pipelined Apps, up to the inflight window;
 * - snapshot: the follower needs a snapshot; Apps wait until it is acknowledged or the send times out.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe, an App is out and we wait for its answer (or the next heartbeat answer) before sending another. */
  probeSent = false;
  pendingSnapshot = 0;
  snapshotSentAt = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Highest leader tick (`stamp`) this follower has acknowledged in the current term: the lease evidence. */
  ackedStamp = -Infinity;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  paused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.reset('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.reset('replicate');
  }

  becomeSnapshot(index: number, now: number): void {
    this.reset('snapshot');
    this.pendingSnapshot = index;
    this.snapshotSentAt = now;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** An acknowledgement up to `index`; false when it is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the App whose previous index was `rejected`; `hint` is the highest index that may match. Returns
   * false for a stale rejection (an answer to an App we already moved past).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Optimistic advance after sending entries up to `lastIndex` in replicate state. */
  sentEntries(lastIndex: number): void {
    if (this.state === 'replicate') {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex);
    } else {
      this.probeSent = true;
    }
  }
}
