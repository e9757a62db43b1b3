import type { DistributedLock } from '../../lib/cluster/distributed-lock.js';
import type { Prng } from '../support/prng.js';
import type { EventQueue } from './event-queue.js';
import type { Violation } from './invariants.js';
import type { RuntimeMember } from './runtime-member.js';
import type { SettleWatch } from './settle-watch.js';

const NAMES = ['job', 'report'];

interface Holding {
  readonly name: string;
  readonly token: number;
  readonly holder: string;
  readonly lock: DistributedLock;
  ended: boolean;
}

export interface LockStats {
  grants: number;
  timeouts: number;
  losses: number;
}

/**
 * Clients that take locks from random members, hold them (sometimes past the ttl, so renewals matter) and release
 * them. Every grant is checked the moment acquire() returns, in simulated real time: no other holder of that name
 * still believes its lease holds (mutual exclusion), and the token is above every token granted before (fencing
 * tokens strictly increase). A crash ends whatever its clients held: a dead process uses nothing.
 */
export class LockWorkload {
  readonly stats: LockStats = { grants: 0, timeouts: 0, losses: 0 };
  private readonly holdings: Holding[] = [];
  private readonly lastToken = new Map<string, { token: number; holder: string }>();

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly members: readonly RuntimeMember[],
    /** No new acquire starts after this simulated time. */
    private readonly endAt: number,
    private readonly fail: (v: Violation) => void,
    private readonly log: (text: () => string) => void,
    private readonly settle: SettleWatch,
    private readonly requestTimeoutMs: number,
  ) {
    for (const m of members) m.onCrash(() => this.endAll(m.id));
  }

  start(clients: number): void {
    for (let c = 0; c < clients; c++) this.client(c);
  }

  private client(c: number): void {
    let gen = 0;
    const think = () => this.queue.schedule(this.rng.range(0, 40), issue);
    const issue = () => {
      if (this.queue.now > this.endAt) return;
      const member = this.rng.pick(this.members);
      const coord = member.coordinator;
      if (!coord) return think();
      const mine = ++gen;
      const name = this.rng.pick(NAMES);
      const ttl = this.rng.pick([80, 200, 600]);
      const wait = this.rng.pick([0, 150, 800]);
      const who = `client ${c} on ${member.id}`;
      // acquire() waits up to `wait`, and the proposal under way then may take a request timeout more.
      const settled = this.settle.watch(member.id, `lock acquire of ${name} (wait ${wait} ms)`, wait + this.requestTimeoutMs * 1.1 + 50);
      // A crash leaves the call pending forever; the client moves on as a real one would after its own timeout.
      this.queue.schedule(wait + 2000, () => {
        if (mine !== gen) return;
        gen++;
        think();
      });
      coord.locks.acquire(name, { ttl, wait }).then(
        (lock) => {
          settled();
          if (mine !== gen) return;
          gen++;
          this.granted(who, lock);
          const holding = ++gen;
          this.queue.schedule(this.rng.range(0, ttl * 2), () => {
            this.end(who, lock, 'released');
            void lock.release();
            if (holding === gen) think();
          });
        },
        (e: Error) => {
          settled();
          if (mine !== gen) return;
          gen++;
          if (e.name === 'LockTimeoutException') this.stats.timeouts++;
          this.log(() => `${who} lock ${name} not acquired: ${e.name}`);
          think();
        },
      );
    };
    think();
  }

  private granted(who: string, lock: DistributedLock): void {
    this.stats.grants++;
    const { name, token } = lock;
    this.log(() => `${who} holds lock ${name} token ${token}`);
    if (!lock.held) this.fail({ kind: 'lock-exclusion', detail: `${who} was handed lock ${name} (token ${token}) whose lease had already lapsed` });
    for (const h of this.holdings) {
      if (h.ended || h.name !== name || !h.lock.held) continue;
      this.fail({
        kind: 'lock-exclusion',
        detail: `${who} acquired ${name} with token ${token} while ${h.holder} still held it with token ${h.token}`,
      });
    }
    const last = this.lastToken.get(name);
    if (last && last.token >= token) {
      this.fail({ kind: 'lock-token', detail: `${who} got ${name} with token ${token} after ${last.holder} had token ${last.token}` });
    }
    this.lastToken.set(name, { token, holder: who });
    const h: Holding = { name, token, holder: who, lock, ended: false };
    this.holdings.push(h);
    lock.signal.addEventListener('abort', () => {
      if (h.ended) return;
      this.stats.losses++;
      this.end(who, lock, 'lost');
    });
  }

  private end(who: string, lock: DistributedLock, why: string): void {
    const i = this.holdings.findIndex((h) => h.lock === lock);
    if (i < 0) return;
    this.holdings[i]!.ended = true;
    this.holdings.splice(i, 1);
    this.log(() => `${who} ${why} lock ${lock.name} token ${lock.token}`);
  }

  private endAll(memberId: string): void {
    for (let i = this.holdings.length - 1; i >= 0; i--) {
      const h = this.holdings[i]!;
      if (!h.holder.endsWith(` on ${memberId}`)) continue;
      h.ended = true;
      this.holdings.splice(i, 1);
    }
  }
}
