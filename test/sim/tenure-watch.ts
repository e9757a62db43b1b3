import type { EventQueue } from './event-queue.js';
import type { Violation } from './invariants.js';
import type { RuntimeMember } from './runtime-member.js';

interface Run {
  readonly member: string;
  readonly signal: AbortSignal;
  readonly start: number;
}

/**
 * A long-running leader task on every member, as the SingletonTaskRunner starts it: it runs from the moment the
 * coordinator hands out a leader signal while the node is leader, and stops when that signal aborts (or the process
 * dies). Runs must never overlap across members in simulated real time.
 */
export class TenureWatch {
  runs = 0;
  private readonly active = new Map<string, Run>();

  constructor(
    private readonly queue: EventQueue,
    members: readonly RuntimeMember[],
    private readonly fail: (v: Violation) => void,
    private readonly log: (text: () => string) => void,
  ) {
    for (const m of members) {
      m.onLeaderChange(() => this.check(m));
      m.onCrash(() => this.stop(m.id, 'crashed'));
    }
  }

  private check(m: RuntimeMember): void {
    const coord = m.coordinator;
    const signal = coord?.leaderSignal();
    if (!coord || !signal || !coord.isLeader || this.active.get(m.id)?.signal === signal) return;
    for (const other of this.active.values()) {
      if (other.member === m.id) continue;
      this.fail({
        kind: 'task-overlap',
        detail: `${m.id} started the leader task at ${this.queue.now.toFixed(3)} while ${other.member}'s run (since ${other.start.toFixed(3)}) had not stopped`,
      });
    }
    this.runs++;
    this.active.set(m.id, { member: m.id, signal, start: this.queue.now });
    this.log(() => `${m.id} starts the leader task (term ${coord.term})`);
    signal.addEventListener('abort', () => this.active.get(m.id)?.signal === signal && this.stop(m.id, 'aborted'), { once: true });
  }

  private stop(id: string, why: string): void {
    if (!this.active.delete(id)) return;
    this.log(() => `${id} leader task ${why}`);
  }
}
