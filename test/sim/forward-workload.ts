import { NotLeaderException } from '../../lib/cluster/errors.js';
import type { ForwardedRun } from '../../lib/cluster/leader-forwarding.js';
import type { Prng } from '../support/prng.js';
import type { EventQueue } from './event-queue.js';
import type { Violation } from './invariants.js';
import type { RuntimeMember } from './runtime-member.js';
import type { SettleWatch } from './settle-watch.js';

/** What the work does: return, throw the handler's own NotLeaderException after running, or wait before it starts. */
type Mode = 'ok' | 'own-error' | 'slow';

interface Call {
  readonly id: string;
  readonly mode: Mode;
  readonly from: string;
  /** How the caller's call ended; null while pending or when its node crashed. */
  outcome: 'ok' | 'own-error' | 'not-run' | 'unknown' | 'other' | null;
}

export interface ForwardStats {
  calls: number;
  ran: number;
  ok: number;
  notRun: number;
  unknown: number;
}

/**
 * Clients that send work to the leader through LeaderForwarding from random members, as @ForwardToLeader handlers
 * do. The work records every run of its body (the side effect). Checked: the body of each call runs at most once,
 * anywhere (`forward-twice`); a call that returned, or failed with the work's own error, ran exactly once, and one
 * refused as not run (NoLeaderException) never ran (`forward-outcome`). ForwardOutcomeUnknownException may mean
 * either. Some work waits before it starts, so leadership can move between the leader's check and the body.
 */
export class ForwardWorkload {
  readonly stats: ForwardStats = { calls: 0, ran: 0, ok: 0, notRun: 0, unknown: 0 };
  private readonly calls = new Map<string, Call>();
  /** Nodes the body ran on, by call id. */
  private readonly runs = new Map<string, string[]>();
  private seq = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly members: () => readonly RuntimeMember[],
    private readonly timeoutMs: number,
    private readonly endAt: number,
    private readonly settle: SettleWatch,
    private readonly fail: (v: Violation) => void,
    private readonly log: (text: () => string) => void,
  ) {}

  /** The leader side: how a forwarded request runs on `member` (RuntimeMember's forwardWork). */
  serve = (member: RuntimeMember, run: ForwardedRun): Promise<unknown> => {
    const { id, mode } = run.payload as { id: string; mode: Mode };
    return this.body(member, id, mode, () => run.admit());
  };

  start(clients: number): void {
    for (let c = 0; c < clients; c++) this.client();
  }

  /** At the end: a call refused as not run must not have run later either. */
  finish(): void {
    for (const call of this.calls.values()) {
      if (call.outcome === 'not-run' && this.runs.has(call.id)) {
        this.fail({ kind: 'forward-outcome', detail: `${call.id} from ${call.from} failed as not run (NoLeaderException), but its body ran on ${this.runs.get(call.id)}` });
      }
    }
  }

  private client(): void {
    let gen = 0;
    const think = () => this.queue.schedule(this.rng.range(0, 30), issue);
    const issue = () => {
      if (this.queue.now > this.endAt) return;
      const member = this.rng.pick(this.members());
      const forwarding = member.forwarding;
      if (!forwarding) return think();
      const call: Call = { id: `f${++this.seq}`, mode: this.rng.pick(['ok', 'ok', 'own-error', 'slow'] as const), from: member.id, outcome: null };
      this.calls.set(call.id, call);
      this.stats.calls++;
      const settled = this.settle.watch(member.id, `forwarded call ${call.id}`, this.timeoutMs * 1.1 + 20);
      const mine = ++gen;
      const next = () => {
        if (mine !== gen) return;
        gen++;
        think();
      };
      // A crash leaves the call pending forever: the client moves on, as a real one would after its own timeout.
      this.queue.schedule(this.timeoutMs * 2, next);
      forwarding
        .run('work', { id: call.id, mode: call.mode }, () => this.body(member, call.id, call.mode, null), this.timeoutMs)
        .then(
          () => this.settled(call, 'ok', settled),
          (e: Error) => this.settled(call, outcomeOf(e), settled, e),
        )
        .finally(next);
    };
    think();
  }

  private async body(member: RuntimeMember, id: string, mode: Mode, admit: (() => void) | null): Promise<string> {
    if (mode === 'slow') await new Promise<void>((r) => member.after(this.rng.range(0, 40), r));
    admit?.();
    const ran = this.runs.get(id) ?? [];
    if (ran.length > 0) this.fail({ kind: 'forward-twice', detail: `the body of ${id} ran on ${member.id} after it had run on ${ran.join(', ')}` });
    ran.push(member.id);
    this.runs.set(id, ran);
    this.stats.ran++;
    this.log(() => `${member.id} runs forwarded ${id} (${mode})`);
    if (mode === 'own-error') throw new NotLeaderException('', `own error of ${id}`);
    return `${id} on ${member.id}`;
  }

  private settled(call: Call, outcome: NonNullable<Call['outcome']>, done: () => void, e?: Error): void {
    done();
    call.outcome = outcome;
    const ran = this.runs.get(call.id)?.length ?? 0;
    this.log(() => `forwarded ${call.id} from ${call.from}: ${outcome}${e ? ` (${e.name}: ${e.message})` : ''}`);
    if (outcome === 'ok') this.stats.ok++;
    if (outcome === 'not-run') this.stats.notRun++;
    if (outcome === 'unknown') this.stats.unknown++;
    if ((outcome === 'ok' || outcome === 'own-error') && ran !== 1) {
      this.fail({ kind: 'forward-outcome', detail: `${call.id} from ${call.from} ended ${outcome}, but its body ran ${ran} times` });
    }
    if (outcome === 'own-error' && call.mode !== 'own-error') {
      this.fail({ kind: 'forward-outcome', detail: `${call.id} from ${call.from} failed with the work's own error, but its work never throws` });
    }
    if (outcome === 'not-run' && ran !== 0) {
      this.fail({ kind: 'forward-outcome', detail: `${call.id} from ${call.from} failed as not run (${e?.message}), but its body ran` });
    }
  }
}

function outcomeOf(e: Error): NonNullable<Call['outcome']> {
  if (e.name === 'NotLeaderException' && e.message.startsWith('own error')) return 'own-error';
  if (e.name === 'NoLeaderException') return 'not-run';
  if (e.name === 'ForwardOutcomeUnknownException') return 'unknown';
  return 'other';
}
