import { CAMPAIGN_TRANSFER, MessageType, type Message, type NodeId } from '../../lib/raft/index.js';
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
 * The messages a targeted fault aims at, the ones a leadership change hinges on: TimeoutNow; a transfer (its
 * TimeoutNow held back while everything its target sends the old leader is lost, until a while after it arrives;
 * the votes of the campaigns it starts lost); the answers to vote requests.
 */
export type FaultTarget = 'timeout-now' | 'transfer' | 'vote-reply';

/** Loss or lateness of chosen messages only, on top of the general faults (Jepsen's "a chosen message lost"). */
export interface TargetedFault {
  readonly target: FaultTarget;
  /** Probability that an aimed-at message is lost. */
  readonly drop: number;
  /** Probability that one that is not lost is held back `holdMs` longer than usual: it arrives late, out of turn. */
  readonly hold: number;
  readonly holdMs: number;
}

/** What the fault may do to `m`: drop it, hold it back, both, or nothing. */
function aimedAt(target: FaultTarget, m: Message): { drop: boolean; hold: boolean } {
  const timeoutNow = m.type === MessageType.TimeoutNow;
  switch (target) {
    case 'timeout-now':
      return { drop: timeoutNow, hold: timeoutNow };
    case 'transfer':
      return { drop: m.type === MessageType.Vote && m.context === CAMPAIGN_TRANSFER, hold: timeoutNow };
    case 'vote-reply': {
      const reply = m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp;
      return { drop: reply, hold: reply };
    }
  }
}

/**
 * A fake network: every message becomes a delivery event after a random delay, unless the link is cut (checked when
 * sent and again when delivered, so a partition also eats what is in flight).
 */
export class SimNetwork {
  faults: NetworkFaults = CALM;
  private readonly cut = new Set<string>();
  /** Links cut by `cutUntilReleased`: heal() leaves them, calm() ends them. Counted, as cuts may overlap. */
  private readonly held = new Map<string, number>();
  private targeted: { fault: TargetedFault; rng: Prng } | null = null;
  sent = 0;
  /** Messages the targeted fault dropped or held back. */
  readonly targetedHits = { dropped: 0, held: 0 };

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly deliver: (m: Message) => void = () => {},
  ) {}

  send(m: Message): void {
    this.transmitRaft(m, () => this.deliver(m));
  }

  /** Aims `fault` at one kind of Raft message, with its own random stream (null: none). */
  target(fault: TargetedFault | null, rng: Prng): void {
    this.targeted = fault ? { fault, rng } : null;
  }

  /** Carries a Raft message: the targeted fault first, then the general faults. */
  transmitRaft(m: Message, arrive: () => void): void {
    const t = this.targeted;
    const aim = t ? aimedAt(t.fault.target, m) : null;
    if (t && aim && (aim.drop || aim.hold)) {
      if (aim.drop && t.rng.chance(t.fault.drop)) {
        this.targetedHits.dropped++;
        return;
      }
      if (aim.hold && t.rng.chance(t.fault.hold)) {
        this.targetedHits.held++;
        const late = () => this.queue.schedule(t.fault.holdMs, () => this.isLinkUp(m.from, m.to) && arrive());
        this.transmit(m.from, m.to, late, true);
        if (t.fault.target === 'transfer') {
          // The old leader hears nothing from the target meanwhile: it cannot learn of the campaign from it.
          const link = `${m.to}>${m.from}`;
          this.cut.add(link);
          this.queue.schedule(2 * t.fault.holdMs, () => this.cut.delete(link));
        }
        return;
      }
    }
    this.transmit(m.from, m.to, arrive, true);
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

  /**
   * Cuts the links from each of `froms` to each of `tos` until the returned function is called; the nemesis's heals
   * leave them be (a fault aimed at one moment must last its time), calm() ends them.
   */
  cutUntilReleased(froms: readonly NodeId[], tos: readonly NodeId[]): () => void {
    const links: string[] = [];
    for (const a of froms) for (const b of tos) if (a !== b) links.push(`${a}>${b}`);
    for (const l of links) this.held.set(l, (this.held.get(l) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const l of links) {
        const n = this.held.get(l);
        if (n === undefined) continue; // calm() ended it already
        if (n <= 1) this.held.delete(l);
        else this.held.set(l, n - 1);
      }
    };
  }

  /** Ends every fault: partitions, loss, delay spread, the targeted fault. */
  calm(): void {
    this.heal();
    this.held.clear();
    this.faults = CALM;
    this.targeted = null;
  }

  hasCuts(): boolean {
    return this.cut.size > 0;
  }

  private isCut(a: NodeId, b: NodeId): boolean {
    return (this.cut.size > 0 && this.cut.has(`${a}>${b}`)) || (this.held.size > 0 && this.held.has(`${a}>${b}`));
  }
}
