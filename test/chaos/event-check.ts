/**
 * The @ClusterEvent deliveries against the effect logs (pure: no I/O). The events that exist are the indexes
 * delivered anywhere and those of acknowledged publishes.
 *
 * - One index, one event: an index carries the same `n` on every node and in the publish that returned it, and an
 *   `n` is committed at one index only (its publish applies once, however often the library retried it).
 * - In order, with no silent gap: within one incarnation (the lines after a `boot` line) a node's indexes strictly
 *   increase and skip no event; across a restart a node may deliver again what it delivered before (at least once),
 *   but its first delivery must not jump past an event it never delivered. A `missed` line (ClusterEventsMissed)
 *   excuses the indexes it covers, (after, upTo].
 * - Complete at the end: every node in `atEnd` (those running once the faults healed and the nodes converged) has
 *   delivered, or been told it missed, every event.
 *
 * A skip right after a restart names how the previous incarnation ended: killed, or closed gracefully, with the
 * positions the node reported (`stop`, `closed` lines) — what was counted delivered without a line in the log.
 */
import { between } from '../support/sorted.js';
import type { EffectLine, MissedLine, StopLine } from './effect-log.js';
import type { PublishRecord } from './history.js';
import { capped, ms, some } from './violations.js';

export interface EventCheckResult {
  readonly violations: string[];
  readonly published: { readonly ok: number; readonly unknown: number };
  /** Distinct event indexes delivered anywhere. */
  readonly indexes: number;
  /** Event lines on all nodes, deliveries again after a restart included. */
  readonly deliveries: number;
  /** Distinct indexes each node delivered. */
  readonly deliveredByNode: Record<string, number>;
  /** Deliveries of an index the node had delivered before (in an earlier incarnation). */
  readonly redelivered: number;
  /** ClusterEventsMissed notices. */
  readonly gapsNoticed: number;
}

export function checkEvents(
  logs: Readonly<Record<string, readonly EffectLine[]>>,
  publishes: readonly PublishRecord[],
  atEnd: readonly string[],
): EventCheckResult {
  const out = { carriers: [] as string[], order: [] as string[], end: [] as string[] };
  const events = eventsOf(logs, publishes, out.carriers);
  const deliveredByNode: Record<string, number> = {};
  let redelivered = 0;
  let deliveries = 0;
  let gapsNoticed = 0;
  for (const [node, lines] of Object.entries(logs)) {
    const walk = walkNode(node, lines, events, out.order);
    deliveredByNode[node] = walk.delivered.size;
    redelivered += walk.redelivered;
    deliveries += walk.deliveries;
    gapsNoticed += walk.gaps.length;
    if (!atEnd.includes(node)) continue;
    const missing = events.filter((u) => !walk.delivered.has(u) && !covers(walk.gaps, u));
    if (missing.length > 0) out.end.push(`${node} never delivered ${missing.length} of the ${events.length} events, at indexes ${some(missing)}, and was told of no gap covering them`);
  }
  return {
    violations: [...capped(out.carriers), ...capped(out.order), ...out.end],
    published: { ok: publishes.filter((p) => p.outcome === 'ok').length, unknown: publishes.filter((p) => p.outcome === 'unknown').length },
    indexes: new Set(Object.values(logs).flatMap((ls) => ls.flatMap((l) => (l.type === 'event' && l.index !== null ? [l.index] : [])))).size,
    deliveries,
    deliveredByNode,
    redelivered,
    gapsNoticed,
  };
}

/** Every event index, ascending, after checking that each index carries one `n` and each `n` one index. */
function eventsOf(logs: Readonly<Record<string, readonly EffectLine[]>>, publishes: readonly PublishRecord[], out: string[]): number[] {
  const carrier = new Map<number, { n: number; where: string }>();
  const indexOf = new Map<number, { index: number; where: string }>();
  const see = (index: number, n: number, where: string) => {
    const c = carrier.get(index);
    if (!c) carrier.set(index, { n, where });
    else if (c.n !== n) out.push(`index ${index} carries event ${c.n} ${c.where} but event ${n} ${where}`);
    const i = indexOf.get(n);
    if (!i) indexOf.set(n, { index, where });
    else if (i.index !== index) out.push(`event ${n} was committed twice: at index ${i.index} ${i.where} and at ${index} ${where}`);
  };
  for (const p of publishes) if (p.outcome === 'ok') see(p.index!, p.n, `(its publish through ${p.node} returned at ${ms(p.return)})`);
  for (const lines of Object.values(logs)) {
    for (const l of lines) {
      if (l.type !== 'event') continue;
      if (l.index === null) out.push(`event ${l.n} was delivered on ${l.node} at ${ms(l.at)} without an eventIndex`);
      else see(l.index, l.n, `on ${l.node} (delivered at ${ms(l.at)})`);
    }
  }
  return [...carrier.keys()].sort((a, b) => a - b);
}

interface NodeWalk {
  readonly delivered: Set<number>;
  readonly gaps: MissedLine[];
  redelivered: number;
  deliveries: number;
}

/** One node's lines in file order: the order of its deliveries, incarnation by incarnation. */
function walkNode(node: string, lines: readonly EffectLine[], events: readonly number[], out: string[]): NodeWalk {
  const walk: NodeWalk = { delivered: new Set(), gaps: [], redelivered: 0, deliveries: 0 };
  let incarnation = 0;
  let pid = 0;
  /** The last index this incarnation delivered or was told it missed; null right after a boot. */
  let prev: number | null = null;
  /** The same over every incarnation so far. */
  let highest = 0;
  /** How this incarnation is ending, and how the previous one ended. */
  let ending: { stop?: StopLine; closed?: StopLine } = {};
  let before = { last: null as number | null, ...ending };
  const where = () => `${node} (incarnation ${incarnation}, pid ${pid})`;
  /** Events in (from, to) this node skipped without a notice. */
  const skipped = (from: number, to: number) => between(events, from, to).filter((u) => !covers(walk.gaps, u));
  for (const l of lines) {
    if (l.type === 'boot') {
      incarnation++;
      pid = l.pid;
      before = { last: prev, ...ending };
      ending = {};
      prev = null;
      continue;
    }
    if (l.type === 'stop' || l.type === 'closed') {
      ending = { ...ending, [l.type]: l };
      continue;
    }
    if (l.type !== 'event' && l.type !== 'missed') continue;
    const index = l.type === 'event' ? l.index : l.after + 1;
    if (index === null) continue; // reported with the carriers
    const what = l.type === 'event' ? `delivered index ${index} (event ${l.n}) at ${ms(l.at)}` : `was told it missed (${l.after}, ${l.upTo}] at ${ms(l.at)}`;
    if (prev !== null && index <= prev) out.push(`${where()} ${what} after ${prev}: not in increasing order`);
    const from = prev ?? highest;
    const gap = skipped(from, index);
    if (gap.length > 0) {
      const after = prev === null ? `as its first after a restart, the highest it had delivered being ${highest}` : `right after ${prev}`;
      const previously = prev === null ? ` (${previousEnd(before)})` : '';
      out.push(`${where()} ${what} ${after}: it skipped the events at ${some(gap)}, with no ClusterEventsMissed covering them${previously}`);
    }
    if (l.type === 'missed') {
      walk.gaps.push(l);
      prev = l.upTo;
    } else {
      walk.deliveries++;
      if (walk.delivered.has(index)) walk.redelivered++;
      walk.delivered.add(index);
      prev = index;
    }
    highest = Math.max(highest, prev);
  }
  return walk;
}

function previousEnd(b: { last: number | null; stop?: StopLine; closed?: StopLine }): string {
  const last = `its previous incarnation logged its last event at index ${b.last ?? 'none'}`;
  if (!b.stop) return `${last} and was not stopped gracefully`;
  const closed = b.closed ? `, and ${b.closed.position} when it had closed at ${ms(b.closed.at)}` : ', and did not finish closing';
  return `${last}; it counted ${b.stop.position} delivered when its app began closing at ${ms(b.stop.at)}${closed}`;
}

function covers(gaps: readonly MissedLine[], index: number): boolean {
  return gaps.some((g) => index > g.after && index <= g.upTo);
}
