import { between, firstAbove } from '../support/sorted.js';
import type { EventGap } from '../../lib/cluster/event-delivery.js';
import type { CommittedEvent } from '../../lib/cluster/state/event-log-module.js';
import { decodePayload } from '../../lib/cluster/state/entry-codec.js';
import { isMembershipEntry } from '../../lib/raft/index.js';
import type { Prng } from '../support/prng.js';
import type { EventQueue } from './event-queue.js';
import type { LogLedger, Violation } from './invariants.js';
import type { RuntimeMember } from './runtime-member.js';
import type { SettleWatch } from './settle-watch.js';

const NAME = 'sim.event';

/**
 * Clients publish cluster events from random members; every member hands them to a sink (its application) from a
 * moment a little after each boot, as an app does once it has bootstrapped. Checked at every delivery: the event is
 * the next event of the log after the last one this member delivered (or, after a restart, after its saved cursor),
 * with the payload the log holds (`event-order`); the saved cursor is never ahead of what was delivered; a gap notice
 * starts where delivery stood and is allowed only when the retention is small (`event-gap`). At the end, every member
 * has delivered every event up to what it applied (`event-gap`).
 */
export class EventWatch {
  published = 0;
  delivered = 0;
  gaps = 0;
  /** Per member: where delivery stands in this incarnation (null: not started yet), and the most it ever reached. */
  private readonly at = new Map<string, number | null>();
  private readonly most = new Map<string, number>();
  /**
   * The log's events, read from the ledger in index order: an entry is an event unless its session was applied
   * before (a retried publish applies once, at its first index), exactly as the state machine decides.
   */
  private readonly logRead = { next: 1, events: [] as number[], sessions: new Set<string>() };
  private seq = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly members: readonly RuntimeMember[],
    private readonly ledger: LogLedger,
    /** Whether a member can legitimately fall behind the retention within a run. */
    private readonly gapsPossible: boolean,
    private readonly requestTimeoutMs: number,
    private readonly endAt: number,
    private readonly settle: SettleWatch,
    private readonly fail: (v: Violation) => void,
    private readonly log: (text: () => string) => void,
  ) {
    for (const m of members) {
      this.at.set(m.id, null);
      m.onBoot(() => m.after(this.rng.range(0, 40), () => this.attach(m)));
      m.onCrash(() => this.at.set(m.id, null));
    }
  }

  start(clients: number): void {
    for (let c = 0; c < clients; c++) {
      const think = () => this.queue.schedule(this.rng.range(0, 40), publish);
      const publish = () => {
        if (this.queue.now > this.endAt) return;
        const m = this.rng.pick(this.members);
        const coord = m.coordinator;
        if (!coord) return think();
        const n = ++this.seq;
        const settled = this.settle.watch(m.id, `publish of event ${n}`, this.requestTimeoutMs * 1.1 + 20);
        let next = true;
        const go = () => next && ((next = false), think());
        this.queue.schedule(this.requestTimeoutMs * 2, go); // a crash leaves the call pending forever
        coord.publishEvent(NAME, { n, from: m.id }).then(
          () => this.published++,
          () => undefined,
        ).finally(() => {
          settled();
          go();
        });
      };
      think();
    }
  }

  /** At the end: every live member delivered every event up to its applied index. */
  finish(): void {
    for (const m of this.members) {
      const at = this.at.get(m.id);
      if (at === null || at === undefined || !m.alive) continue;
      const newest = this.lastEventAtOrBelow(m.appliedIndex);
      if (newest > at) this.fail({ kind: 'event-gap', detail: `${m.id} applied up to ${m.appliedIndex} but delivered events only up to ${at}; event ${newest} never came` });
    }
  }

  private attach(m: RuntimeMember): void {
    const coord = m.coordinator;
    if (!coord) return;
    const from = coord.eventPosition;
    const most = this.most.get(m.id) ?? 0;
    if (from > most) this.fail({ kind: 'event-order', detail: `${m.id} restarted with its cursor at ${from}, past the newest event it ever delivered (${most})` });
    this.at.set(m.id, from);
    this.log(() => `${m.id} starts delivering events after ${from}`);
    coord.deliverEvents({ deliver: (e) => this.deliver(m, e), missed: (g) => this.missed(m, g) });
  }

  private deliver(m: RuntimeMember, e: CommittedEvent): void {
    const at = this.at.get(m.id)!;
    this.delivered++;
    this.readLog(e.index);
    const entry = this.ledger.entryAt(e.index);
    const logged = entry && entry.data.length > 0 ? decodePayload(entry.data) : null;
    if (!logged || !this.isEvent(e.index) || JSON.stringify(logged.command) !== JSON.stringify({ name: e.name, payload: e.payload })) {
      this.fail({ kind: 'event-order', detail: `${m.id} delivered ${JSON.stringify(e)}, which is not the event the log holds at ${e.index}` });
    }
    const skipped = this.eventsBetween(at, e.index);
    if (e.index <= at || skipped.length > 0) {
      this.fail({ kind: 'event-order', detail: `${m.id} delivered event ${e.index} after ${at}${skipped.length ? `, skipping ${skipped.join(', ')}` : ''}` });
    }
    this.at.set(m.id, e.index);
    this.most.set(m.id, Math.max(this.most.get(m.id) ?? 0, e.index));
    this.log(() => `${m.id} delivers event ${e.index}`);
  }

  private missed(m: RuntimeMember, gap: EventGap): void {
    const at = this.at.get(m.id)!;
    this.gaps++;
    this.log(() => `${m.id} is told it missed events ${gap.after}..${gap.upTo}`);
    if (gap.after !== at || gap.upTo <= at || !this.gapsPossible) {
      this.fail({ kind: 'event-gap', detail: `${m.id} got a gap notice ${gap.after}..${gap.upTo} with delivery at ${at}${this.gapsPossible ? '' : ' and every event still retained'}` });
    }
    this.at.set(m.id, gap.upTo);
    this.most.set(m.id, Math.max(this.most.get(m.id) ?? 0, gap.upTo));
  }

  /** Reads the ledger's entries in index order up to `index` (as far as some node applied them). */
  private readLog(index: number): void {
    const log = this.logRead;
    for (; log.next <= index; log.next++) {
      const e = this.ledger.entryAt(log.next);
      if (e === undefined) return; // not applied anywhere yet
      if (e.data.length === 0 || isMembershipEntry(e.data)) continue; // a no-op, or a configuration
      const p = decodePayload(e.data);
      if (p.session) {
        const key = `${p.session.client}:${p.session.seq}`;
        if (log.sessions.has(key)) continue;
        log.sessions.add(key);
      }
      if (p.module === 'event') log.events.push(log.next);
    }
  }

  /** Indexes of the events the log holds strictly between `a` and `b`. */
  private eventsBetween(a: number, b: number): number[] {
    this.readLog(b);
    return between(this.logRead.events, a, b);
  }

  private lastEventAtOrBelow(index: number): number {
    this.readLog(index);
    return this.logRead.events[firstAbove(this.logRead.events, index) - 1] ?? 0;
  }

  private isEvent(index: number): boolean {
    const i = firstAbove(this.logRead.events, index - 1);
    return this.logRead.events[i] === index;
  }
}
