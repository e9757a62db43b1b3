/**
 * Checks of the lock history (pure: no I/O).
 *
 * Exact, from what the clients and the fenced resource recorded:
 * - a token is granted to one holder per lock name;
 * - grants respect real time: an acquire called after another one returned gets a higher token;
 * - in the resource's own order, accepted requests never go back to a lower token, carry granted tokens only, and
 *   the critical sections of different holders do not interleave; every accepted write builds on the value the
 *   previous accepted write left (no lost update).
 *
 * Bounded by the clock assumption, from what the holders' nodes said (Grant.acquiredAt, Belief):
 * - two holders never both believe they hold the lock at the same instant. A holder trusts its lease for
 *   ttl − margin (lockSafetyMargin: ttl/10 for ttl ≥ 500 ms) on its own monotonic clock from when it asked; the next
 *   holder cannot be granted before ttl has passed on the leaders' wall clocks. With clock rates ≥ 1 − margin/ttl
 *   (0.9; the chaos nemesis uses 0.95–1.05) and one machine's wall clock, a holder stops believing before the next
 *   one is granted. `toleranceMs` only absorbs the error of comparing epochMs() across processes (well under 1 ms).
 */
import type { ResourceRequest } from './fencing-resource.js';
import type { Belief, Grant } from './history.js';

export interface LockHistory {
  readonly grants: readonly Grant[];
  /** The fenced resource's log, in its own order. */
  readonly resource: readonly ResourceRequest[];
  readonly beliefs: readonly Belief[];
  /** When each holder asked its node to release, by holder; absent when it never did (e.g. its node died). */
  readonly releasedAt: ReadonlyMap<string, number>;
}

export interface LockCheckResult {
  readonly violations: string[];
  /** The smallest gap between one holder's last belief and a later holder's acquire, ms (negative: overlap). */
  readonly minBeliefGapMs: number | null;
  /**
   * The same where the earlier holder had not asked to release before that acquire, so the lock moved on when its
   * lease ran out: by the clock assumption at least ttl − (ttl − margin) / slowest rate (53 ms for ttl 1 s and 0.95).
   */
  readonly minExpiryGapMs: number | null;
}

export const BELIEF_TOLERANCE_MS = 5;

export function checkLocks(h: LockHistory, toleranceMs = BELIEF_TOLERANCE_MS): LockCheckResult {
  const { grants, resource } = h;
  const violations: string[] = [];
  const byName = groupBy(grants, (g) => g.name);
  for (const [name, gs] of byName) {
    checkUniqueTokens(name, gs, violations);
    checkGrantOrder(name, gs, violations);
  }
  for (const [name, rs] of groupBy(resource, (r) => r.name)) checkResourceOrder(name, rs, byName.get(name) ?? [], violations);
  const gaps = { all: null as number | null, expiry: null as number | null };
  for (const [name, gs] of byName) checkBeliefs(name, gs, h, toleranceMs, violations, gaps);
  return { violations, minBeliefGapMs: gaps.all, minExpiryGapMs: gaps.expiry };
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}

const ms = (t: number): string => t.toFixed(1);
const show = (g: Grant): string => `${g.holder} on ${g.node} (acquire ${ms(g.call)}..${ms(g.return)})`;

function checkUniqueTokens(name: string, grants: readonly Grant[], out: string[]): void {
  const byToken = new Map<number, Grant>();
  for (const g of grants) {
    const other = byToken.get(g.token);
    if (other) out.push(`lock "${name}": token ${g.token} granted twice, to ${show(other)} and to ${show(g)}`);
    else byToken.set(g.token, g);
  }
}

/** Sweeps the acquires in call order, knowing the highest token among those that returned before each call. */
function checkGrantOrder(name: string, grants: readonly Grant[], out: string[]): void {
  const byCall = grants.slice().sort((a, b) => a.call - b.call);
  const byReturn = grants.slice().sort((a, b) => a.return - b.return);
  let r = 0;
  let highest: Grant | null = null;
  for (const g of byCall) {
    for (; r < byReturn.length && byReturn[r]!.return < g.call; r++) {
      if (!highest || byReturn[r]!.token > highest.token) highest = byReturn[r]!;
    }
    if (highest && g.token <= highest.token) {
      out.push(`lock "${name}": ${show(g)} got token ${g.token}, not above token ${highest.token} of ${show(highest)}, which returned before it was called`);
    }
  }
}

function checkResourceOrder(name: string, requests: readonly ResourceRequest[], grants: readonly Grant[], out: string[]): void {
  const holderOf = new Map(grants.map((g) => [g.token, g.holder]));
  const finished = new Set<string>();
  let last: ResourceRequest | null = null;
  let value = 0;
  for (const r of requests) {
    if (!r.accepted) continue;
    const at = `lock "${name}", resource request #${r.seq} (${r.op} by ${r.holder} with token ${r.token})`;
    if (holderOf.get(r.token) !== r.holder) out.push(`${at}: accepted, but token ${r.token} was granted to ${holderOf.get(r.token) ?? 'nobody'}`);
    if (last && r.token < last.token) out.push(`${at}: accepted after request #${last.seq} with the higher token ${last.token}`);
    if (last && last.holder !== r.holder) finished.add(last.holder);
    if (finished.has(r.holder)) out.push(`${at}: ${r.holder}'s critical section resumed after another holder's had started`);
    if (r.op === 'write') {
      if (r.value !== value + 1) out.push(`${at}: wrote ${r.value} over ${value}: an update was lost`);
      value = r.value;
    }
    last = r;
  }
}

/** Also lowers `gaps` to the smallest gaps found between an earlier holder's last belief and a later acquire. */
function checkBeliefs(
  name: string,
  grants: readonly Grant[],
  h: LockHistory,
  toleranceMs: number,
  out: string[],
  gaps: { all: number | null; expiry: number | null },
): void {
  const lastHeld = new Map<string, number>();
  for (const b of h.beliefs) {
    if (b.name === name && b.held) lastHeld.set(b.holder, Math.max(lastHeld.get(b.holder) ?? -Infinity, b.at));
  }
  const byToken = grants.slice().sort((a, b) => a.token - b.token);
  const lower = (m: number | null, x: number): number => (m === null ? x : Math.min(m, x));
  let latest: { holder: string; token: number; until: number } | null = null;
  for (const g of byToken) {
    if (latest) {
      const gap = g.acquiredAt - latest.until;
      gaps.all = lower(gaps.all, gap);
      if (!((h.releasedAt.get(latest.holder) ?? Infinity) <= g.acquiredAt)) gaps.expiry = lower(gaps.expiry, gap);
      if (gap < -toleranceMs) {
        out.push(
          `lock "${name}": ${latest.holder} (token ${latest.token}) still believed it held the lock at ${ms(latest.until)}, ` +
            `${ms(-gap)} ms after ${g.holder} (token ${g.token}) acquired it at ${ms(g.acquiredAt)}`,
        );
      }
    }
    const until = Math.max(g.acquiredAt, lastHeld.get(g.holder) ?? -Infinity);
    if (!latest || until > latest.until) latest = { holder: g.holder, token: g.token, until };
  }
}
