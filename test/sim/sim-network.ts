import type { Message, NodeId } from '../../lib/raft/index.js';
import type { EventQueue } from './event-queue.js';
import type { Prng } from '../support/prng.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** One-way delay in ms, uniform in [min, max]; a wide range reorders messages. */
  delayMin: number;
  delayMax: number;
}

export const CALM: NetworkFaults = { drop: 0, duplicate: 0, delayMin: 0.1, delayMax: 1 };

/**
 * A fake network: every message becomes a delivery event after a random delay, unless the link is cut (checked when
 * sent and again when delivered, so a partition also eats what is in flight).
 */
export class SimNetwork {
  faults: NetworkFaults = CALM;
  private readonly cut = new Set<string>();
  sent = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly deliver: (m: Message) => void = () => {},
  ) {}

  send(m: Message): void {
    this.transmit(m.from, m.to, () => this.deliver(m), true);
  }

  /** Carries anything from `from` to `to` under the current faults; false when it was lost at once. */
  transmit(from: NodeId, to: NodeId, arrive: () => void, mayDuplicate: boolean): boolean {
    this.sent++;
    if (this.isCut(from, to) || this.rng.chance(this.faults.drop)) return false;
    const copies = mayDuplicate && this.rng.chance(this.faults.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.queue.schedule(this.rng.range(this.faults.delayMin, this.faults.delayMax), () => {
        if (!this.isCut(from, to)) arrive();
      });
    }
    return true;
  }

  isLinkUp(from: NodeId, to: NodeId): boolean {
    return !this.isCut(from, to);
  }

  /** Cuts the link from `a` to `b` only (one-way). */
  cutOneWay(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
  }

  /** Splits the nodes into groups that cannot talk across. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    for (const g of groups) {
      for (const h of groups) {
        if (g === h) continue;
        for (const a of g) for (const b of h) this.cutOneWay(a, b);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  hasCuts(): boolean {
    return this.cut.size > 0;
  }

  private isCut(a: NodeId, b: NodeId): boolean {
    return this.cut.size > 0 && this.cut.has(`${a}>${b}`);
  }
}
