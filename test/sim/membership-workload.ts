import { learnersOf, votersOf, type Member, type Membership, type MemberRole } from '../../lib/raft/index.js';
import type { Prng } from '../support/prng.js';
import type { EventQueue } from './event-queue.js';
import { describe } from './membership-invariants.js';
import type { SimMember } from './member.js';
import type { MembershipProfile } from './profile.js';

const MAX_VOTERS = 7;
/** A plan (replace, remove the leader) that has not finished in this long is given up. */
const PLAN_MS = 2000;

export interface MembershipEnv {
  /** The member that leads now, if any. */
  leader(): SimMember | undefined;
  /** Ids removed by a committed configuration. */
  removed(): ReadonlySet<string>;
  /** Cuts `group` off from everybody else, for a while. */
  isolate(group: readonly string[]): void;
  /** Loses what `from` sends `to`, for a while. */
  cutOneWay(from: string, to: string): void;
  /** Stops `id` for good; returns the id of a fresh node that joined the spare pool in its place, if one was left. */
  retire(id: string): string | null;
  log(text: () => string): void;
}

type Plan =
  | { readonly kind: 'replace'; readonly victim: string; readonly spare: string; readonly until: number }
  | { readonly kind: 'remove-leader'; readonly old: string; to: string | null; readonly until: number };

/**
 * Random configuration changes made by the current leader, one server at a time: add a spare as a learner (now and
 * then straight as a voter), promote a learner, demote or remove a member other than itself, replace a voter (remove
 * it, then add and promote a spare over successive changes), and remove the leader (hand leadership to another voter,
 * whose leadership then removes it). Now and then a change of two voters at once, or a change by a new leader before
 * its no-op commits: the core must refuse those.
 *
 * An id is added at most once: once it entered a proposed configuration it never returns to the spare pool, so a
 * removed node is never re-added. A removed node keeps running on its old disk (it may keep pre-voting) until
 * `lingerMs` have passed; then it is stopped for good, and a fresh node — new id, empty disk — may join the spare pool
 * in its place. Reusing an id with a wiped disk could cast a second vote in a term the old disk had voted in.
 */
export class MembershipWorkload {
  readonly stats = { proposed: 0, refused: 0, twoVoterTries: 0, retired: 0 };
  private readonly spares: string[];
  private plan: Plan | null = null;
  private readonly removedSince = new Map<string, number>();
  private readonly retired = new Set<string>();
  /** The last change whose leader was then cut off: which way it moved the voter count, and who was cut off. */
  private cutOff: { readonly way: 'grow' | 'shrink'; readonly group: readonly string[] } | null = null;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly profile: MembershipProfile,
    spares: readonly string[],
    private readonly until: number,
    private readonly env: MembershipEnv,
  ) {
    this.spares = [...spares];
  }

  start(): void {
    const loop = () => {
      if (this.queue.now >= this.until) return;
      this.act(this.env.leader());
      this.retireRemoved();
      // A plan moves on as soon as its previous step committed; single changes come at the profile's pace.
      this.queue.schedule(this.plan ? this.rng.range(5, 30) : this.rng.range(0.2, 1.8) * this.profile.changeEvery, loop);
    };
    this.queue.schedule(this.rng.range(0.2, 1.8) * this.profile.changeEvery, loop);
  }

  /**
   * A member just became leader: perhaps it tries a change at once, before its no-op commits (the core must refuse).
   * Mostly the opposite of the change of a leader that was cut off right after proposing it (see propose()): that
   * change may still win, and if this one were accepted too, the two quorums could miss each other.
   */
  newLeader(member: SimMember): void {
    if (this.queue.now >= this.until || !this.rng.chance(this.profile.eagerNewLeader)) return;
    this.queue.schedule(this.rng.range(0, 1), () => {
      const core = member.raft?.core;
      if (this.queue.now >= this.until || core?.role !== 'leader') return;
      const m = core.membership;
      const voters = votersOf(m);
      const others = voters.filter((v) => v !== member.id);
      const learners = learnersOf(m);
      const spares = this.spares.filter((s) => !m.members.some((x) => x.id === s));
      // The opposite of the change a cut-off leader may still hold: its quorum and ours can then miss each other, if
      // one of ours lags behind (what this leader sends one voter is lost for a while).
      const cut = this.cutOff;
      this.cutOff = null;
      const grow = cut?.way === 'shrink' && voters.length < MAX_VOTERS;
      if (this.rng.chance(0.3)) return this.act(member);
      const lag = others.filter((v) => !cut?.group.includes(v));
      if (cut && lag.length > 0 && this.rng.chance(0.5)) this.env.cutOneWay(member.id, this.rng.pick(lag));
      if (grow && learners.length > 0) this.propose(member, with_(m, this.rng.pick(learners), 'voter'), 'promote (new leader)', false);
      else if (grow && spares.length > 0) this.propose(member, with_(m, this.rng.pick(spares), 'voter'), 'add voter (new leader)', false);
      else if (others.length > 0 && voters.length > this.profile.minVoters) {
        const victim = this.rng.pick(others);
        if (this.rng.chance(0.5)) this.propose(member, without(m, victim), 'remove voter (new leader)', false);
        else this.propose(member, with_(m, victim, 'learner'), 'demote (new leader)', false);
      } else this.act(member);
    });
  }

  private act(leader: SimMember | undefined): void {
    const core = leader?.raft?.core;
    if (!leader || !core || core.role !== 'leader') return;
    if (this.plan) {
      this.advancePlan(leader);
      return;
    }
    const m = core.membership;
    // Mostly wait for a pending change to commit; sometimes try anyway (the core must refuse).
    if (core.pendingMembershipIndex() > 0 && !this.rng.chance(0.1)) return;
    if (this.rng.chance(this.profile.twoVoters) && this.twoVoterChange(leader, m)) return;
    const voters = votersOf(m);
    const learners = learnersOf(m);
    const others = voters.filter((v) => v !== leader.id);
    const spares = this.spares.filter((s) => !m.members.some((x) => x.id === s));
    const canShrink = others.length > 0 && voters.length > this.profile.minVoters;
    const options: [number, () => void][] = [];
    if (spares.length > 0) options.push([3, () => this.propose(leader, with_(m, this.rng.pick(spares), 'learner'), 'add learner')]);
    if (spares.length > 0 && voters.length < MAX_VOTERS) options.push([0.5, () => this.propose(leader, with_(m, this.rng.pick(spares), 'voter'), 'add voter')]);
    if (learners.length > 0 && voters.length < MAX_VOTERS) options.push([3, () => this.propose(leader, with_(m, this.rng.pick(learners), 'voter'), 'promote')]);
    if (canShrink) options.push([1.5, () => this.propose(leader, with_(m, this.rng.pick(others), 'learner'), 'demote')]);
    if (learners.length > 0) options.push([1, () => this.propose(leader, without(m, this.rng.pick(learners)), 'remove learner')]);
    if (canShrink) options.push([1, () => this.propose(leader, without(m, this.rng.pick(others)), 'remove voter')]);
    if (canShrink && spares.length > 0) {
      options.push([
        1,
        () => {
          this.plan = { kind: 'replace', victim: this.rng.pick(others), spare: this.rng.pick(spares), until: this.queue.now + PLAN_MS };
          this.advancePlan(leader);
        },
      ]);
    }
    if (canShrink) {
      options.push([
        1,
        () => {
          this.plan = { kind: 'remove-leader', old: leader.id, to: null, until: this.queue.now + PLAN_MS };
          this.advancePlan(leader);
        },
      ]);
    }
    if (options.length === 0) return;
    let r = this.rng.next() * options.reduce((s, [w]) => s + w, 0);
    for (const [w, run] of options) {
      r -= w;
      if (r < 0) return run();
    }
    options[options.length - 1]![1]();
  }

  private advancePlan(leader: SimMember): void {
    const plan = this.plan!;
    const core = leader.raft!.core;
    const m = core.membership;
    const has = (id: string) => m.members.find((x) => x.id === id);
    if (this.queue.now >= plan.until) {
      this.env.log(() => `MEMBERSHIP plan ${plan.kind} given up`);
      this.plan = null;
      return;
    }
    if (core.pendingMembershipIndex() > 0) return;
    if (plan.kind === 'replace') {
      if (has(plan.victim)) {
        if (plan.victim === leader.id) {
          this.plan = { kind: 'remove-leader', old: leader.id, to: null, until: plan.until };
          return this.advancePlan(leader);
        }
        this.propose(leader, without(m, plan.victim), `replace ${plan.victim} by ${plan.spare}: remove`);
      } else if (!has(plan.spare)) {
        if (!this.spares.includes(plan.spare)) this.plan = null; // its add was lost: the id is not added twice
        else this.propose(leader, with_(m, plan.spare, 'learner'), `replace ${plan.victim} by ${plan.spare}: add`);
      } else if (has(plan.spare)!.role === 'learner') {
        this.propose(leader, with_(m, plan.spare, 'voter'), `replace ${plan.victim} by ${plan.spare}: promote`);
      } else {
        this.plan = null;
      }
      return;
    }
    if (leader.id === plan.old) {
      const others = votersOf(m).filter((v) => v !== plan.old);
      if (others.length === 0) {
        this.plan = null;
        return;
      }
      if (!plan.to || !others.includes(plan.to)) {
        plan.to = this.rng.pick(others);
        this.env.log(() => `MEMBERSHIP ${leader.id} hands over to ${plan.to} before its removal`);
      }
      leader.transferLeader(plan.to);
    } else if (has(plan.old)) {
      this.propose(leader, without(m, plan.old), `remove the former leader ${plan.old}`);
    } else {
      this.plan = null;
    }
  }

  /** A change of two voters at once; false when none fits this configuration. */
  private twoVoterChange(leader: SimMember, m: Membership): boolean {
    const learners = learnersOf(m);
    const others = votersOf(m).filter((v) => v !== leader.id);
    const spares = this.spares.filter((s) => !m.members.some((x) => x.id === s));
    const candidates: [string, Membership][] = [];
    if (learners.length >= 2) candidates.push(['promote two', with_(with_(m, learners[0]!, 'voter'), learners[1]!, 'voter')]);
    if (others.length >= 1 && spares.length >= 1) candidates.push(['replace at once', with_(without(m, others[0]!), spares[0]!, 'voter')]);
    if (spares.length >= 2) candidates.push(['add two voters', with_(with_(m, spares[0]!, 'voter'), spares[1]!, 'voter')]);
    if (others.length >= 2) candidates.push(['remove two voters', without(without(m, others[0]!), others[1]!)]);
    if (candidates.length === 0) return false;
    const [what, next] = this.rng.pick(candidates);
    this.stats.twoVoterTries++;
    this.propose(leader, next, `${what} (must be refused)`);
    return true;
  }

  /** Proposes `next` on `leader`; `race`: perhaps cut the leader off right after (not for a new leader's own move). */
  private propose(leader: SimMember, next: Membership, what: string, race = true): void {
    const before = leader.raft!.core.membership;
    const ok = leader.proposeMembership(next);
    this.env.log(() => `MEMBERSHIP ${leader.id} proposes ${what}: ${describe(before)} -> ${describe(next)}${ok ? '' : ' REFUSED'}`);
    if (!ok) {
      this.stats.refused++;
      return;
    }
    this.stats.proposed++;
    for (const x of next.members) {
      const i = this.spares.indexOf(x.id);
      if (i >= 0) this.spares.splice(i, 1);
    }
    const changed = votersChanged(before, next);
    // Mostly from an even number of voters: only then can the two sides' quorums miss each other with one laggard.
    const odds = votersOf(before).length % 2 === 0 ? 1 : 0.25;
    if (race && changed && this.rng.chance(this.profile.isolateAfterChange * odds)) {
      // Few members get the change before the leader is cut off (often none: its Ready is still being written), so
      // the next leader may not have it. A new voter is cut off with the leader; a voter it removed or demoted stays
      // with the others, who can then elect.
      const grows = votersOf(next).length > votersOf(before).length;
      const group = grows ? [leader.id, changed] : [leader.id];
      this.cutOff = { way: grows ? 'grow' : 'shrink', group };
      this.queue.schedule(this.rng.chance(0.7) ? 0 : this.rng.range(0, 2), () => this.env.isolate(group));
    }
  }

  /** Removed nodes that lingered long enough are stopped for good; a fresh node may take the place in the pool. */
  private retireRemoved(): void {
    if (!Number.isFinite(this.profile.lingerMs)) return;
    for (const id of this.env.removed()) {
      if (this.retired.has(id)) continue;
      const since = this.removedSince.get(id);
      if (since === undefined) {
        this.removedSince.set(id, this.queue.now);
        continue;
      }
      if (this.queue.now - since < this.profile.lingerMs) continue;
      this.retired.add(id);
      this.stats.retired++;
      const fresh = this.env.retire(id);
      this.env.log(() => `MEMBERSHIP ${id} stopped for good${fresh ? `; ${fresh} joins the spare pool` : ''}`);
      if (fresh) this.spares.push(fresh);
    }
  }
}

/** `m` with `id` in `role` (added at the end if it was no member). */
function with_(m: Membership, id: string, role: MemberRole): Membership {
  const member: Member = { id, address: '', role };
  return m.members.some((x) => x.id === id)
    ? { members: m.members.map((x) => (x.id === id ? member : x)) }
    : { members: [...m.members, member] };
}

function without(m: Membership, id: string): Membership {
  return { members: m.members.filter((x) => x.id !== id) };
}

/** The id whose voting changed from `a` to `b` (the first one), or null. */
function votersChanged(a: Membership, b: Membership): string | null {
  const va = new Set(votersOf(a));
  const vb = new Set(votersOf(b));
  for (const v of vb) if (!va.has(v)) return v;
  for (const v of va) if (!vb.has(v)) return v;
  return null;
}
