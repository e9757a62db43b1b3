import type { TaskRunContext } from '../../lib/cluster/task-ledger.js';
import type { Prng } from '../support/prng.js';
import type { EventQueue } from './event-queue.js';
import type { Violation } from './invariants.js';
import type { RuntimeMember } from './runtime-member.js';
import type { SettleWatch } from './settle-watch.js';

const TASK = 'tick';

interface Body {
  readonly member: string;
  readonly fireTime: number;
  readonly since: number;
}

/**
 * A scheduled singleton task fired on every member every `period` ms of its own clock, with the fire time taken from
 * its own wall clock, as @Cron/@Interval with @SingletonTask do; each fire goes through TaskLedger.runOnce. A member
 * that becomes leader also fires the slot it is in at once, as `catchUp: true` does. The body lasts a random while and
 * stops the moment its run's signal aborts. Checked: each fire time's body starts at most once cluster-wide
 * (`fire-twice`), and no two members run a body at the same simulated instant (`fire-overlap`).
 */
export class FireWorkload {
  runs = 0;
  private readonly started = new Map<number, string>();
  private readonly active = new Set<Body>();

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    members: readonly RuntimeMember[],
    private readonly period: number,
    private readonly endAt: number,
    private readonly requestTimeoutMs: number,
    private readonly settle: SettleWatch,
    private readonly fail: (v: Violation) => void,
    private readonly log: (text: () => string) => void,
  ) {
    const caughtUp = new Map<string, AbortSignal>();
    for (const m of members) {
      m.onBoot(() => this.schedule(m));
      m.onLeaderChange(() => {
        const signal = m.coordinator?.leaderSignal();
        if (!signal || caughtUp.get(m.id) === signal || this.queue.now > this.endAt) return;
        caughtUp.set(m.id, signal);
        this.fire(m, Math.floor(m.wallClock() / this.period) * this.period);
      });
      m.onCrash(() => {
        for (const b of this.active) if (b.member === m.id) this.active.delete(b);
      });
    }
  }

  /**
   * Fires on `member` at each multiple of the period on its wall clock, for as long as this incarnation lives. Its
   * timers run at its clock's rate, so a fire may come a little early or late; the fire time is the multiple it
   * was set for, as a scheduler's is.
   */
  private schedule(member: RuntimeMember): void {
    const at = (fireTime: number) => {
      member.after(fireTime - member.wallClock(), () => {
        if (this.queue.now > this.endAt) return;
        this.fire(member, fireTime);
        at(fireTime + this.period);
      });
    };
    at((Math.floor(member.wallClock() / this.period) + 1) * this.period);
  }

  private fire(member: RuntimeMember, fireTime: number): void {
    const coord = member.coordinator;
    if (!coord) return;
    const duration = this.rng.range(0, 1.5 * this.period);
    const settled = this.settle.watch(member.id, `fire ${fireTime}`, this.requestTimeoutMs * 1.1 + duration + 20);
    void coord.tasks.runOnce(TASK, fireTime, (run) => this.body(member, run, duration)).finally(settled);
  }

  private body(member: RuntimeMember, run: TaskRunContext, duration: number): Promise<void> {
    const first = this.started.get(run.fireTime);
    if (first !== undefined) {
      this.fail({ kind: 'fire-twice', detail: `${member.id} ran the fire of ${run.fireTime} (token ${run.token}) that ${first} had run` });
    }
    this.started.set(run.fireTime, member.id);
    for (const other of this.active) {
      if (other.member === member.id) continue;
      this.fail({
        kind: 'fire-overlap',
        detail: `${member.id} started the fire of ${run.fireTime} while ${other.member} was still running the fire of ${other.fireTime} (since ${other.since.toFixed(3)})`,
      });
    }
    this.runs++;
    const b: Body = { member: member.id, fireTime: run.fireTime, since: this.queue.now };
    this.active.add(b);
    this.log(() => `${member.id} runs the fire of ${run.fireTime} (token ${run.token}, term ${run.term})`);
    return new Promise<void>((resolve) => {
      const end = () => {
        run.signal.removeEventListener('abort', end);
        this.active.delete(b);
        resolve();
      };
      if (run.signal.aborted) return end();
      run.signal.addEventListener('abort', end, { once: true });
      member.after(duration, end);
    });
  }
}
