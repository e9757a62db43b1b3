import { type Entry, type Message, type NodeId } from '../../lib/raft/index.js';
import { Cluster, text } from './helpers.js';

/** A small seeded generator (LCG, Numerical Recipes constants), so every run replays exactly. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Violation {
  readonly tick: number;
  readonly what: string;
}

/**
 * Random message loss, delay and reordering, crashes and restarts, proposals and compactions; after every tick the
 * Raft safety properties are checked:
 * - Election Safety: at most one leader per term;
 * - State Machine Safety: what any two nodes applied agrees index by index;
 * - Leader Completeness: a leader holds every entry committed in an earlier term;
 * - lease: while a leader holds a valid lease, no node leads a higher term (all clocks tick at the same rate here).
 */
function run(seed: number, ticks: number): Violation[] {
  const rnd = lcg(seed);
  const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, seed % 2 === 0 ? 5 : 3);
  const c = new Cluster(ids, { configs: Object.fromEntries(ids.map((id) => [id, { random: lcg(seed * 31 + id.charCodeAt(0)) }])) });
  const violations: Violation[] = [];
  const leaders = new Map<number, NodeId>();
  /** index -> the first entry applied there by anyone, and a term at or after the one it was committed in. */
  const appliedAt = new Map<number, { entry: Entry; committedBy: number }>();
  let delayed: Message[] = [];
  let proposals = 0;

  const deliver = () => {
    c.flush();
    const batch = [...delayed, ...c.net.take()];
    delayed = [];
    for (const m of batch) {
      const r = rnd();
      if (r < 0.05) continue; // lost
      if (r < 0.2) delayed.push(m); // late, and so reordered
      else c.nodes.get(m.to)?.step(m);
    }
    c.flush();
  };

  for (let t = 0; t < ticks; t++) {
    for (const id of c.running()) c.node(id).tick();
    for (let hop = 0; hop < 3; hop++) deliver();

    const r = rnd();
    const victim = ids[Math.floor(rnd() * ids.length)]!;
    if (r < 0.01 && c.running().length === ids.length) c.stop(victim);
    else if (r < 0.05 && !c.nodes.has(victim)) c.start(victim);
    else if (r < 0.06) c.net.isolate(victim);
    else if (r < 0.07) c.net.cut(victim, ids[Math.floor(rnd() * ids.length)]!);
    else if (r < 0.1) c.net.heal();
    const lead = c.leader();
    if (lead && rnd() < 0.3) c.propose(lead, `p${proposals++}`);
    if (lead && rnd() < 0.02) {
      const n = c.raft(lead);
      if (n.log.applied > n.log.snapshotIndex()) c.compact(lead, new Uint8Array([n.log.applied & 0xff]));
    }

    // ---- invariants -----------------------------------------------------------------------------------------------
    for (const id of c.running()) {
      const n = c.raft(id);
      if (n.role === 'leader') {
        const seen = leaders.get(n.term);
        if (seen !== undefined && seen !== id) violations.push({ tick: t, what: `two leaders in term ${n.term}: ${seen}, ${id}` });
        leaders.set(n.term, id);
      }
    }
    for (const id of ids) {
      // The applier's term now is at least the term of the leader that committed what it applied.
      const term = c.nodes.get(id)?.core.term ?? c.disks.get(id)!.hardState.term;
      for (const e of c.applied.get(id)!) {
        const first = appliedAt.get(e.index)?.entry;
        if (!first) appliedAt.set(e.index, { entry: e, committedBy: term });
        else if (first.term !== e.term || text(first.data) !== text(e.data)) {
          violations.push({ tick: t, what: `${id} applied ${e.index}@${e.term}, another node ${first.index}@${first.term}` });
        }
      }
      c.applied.set(id, []);
    }
    for (const id of c.running()) {
      const n = c.raft(id);
      if (n.role !== 'leader') continue;
      for (const [index, { entry: e, committedBy }] of appliedAt) {
        if (n.term <= committedBy) continue; // a leader of an older term need not have it
        const term = n.log.term(index);
        if (term !== undefined && term !== e.term) violations.push({ tick: t, what: `leader ${id} has ${index}@${term}, applied ${e.term}` });
        if (index > n.log.lastIndex()) violations.push({ tick: t, what: `leader ${id} lacks applied index ${index}` });
      }
      if (c.node(id).hasValidLease()) {
        for (const other of c.running()) {
          const o = c.raft(other);
          if (o.role === 'leader' && o.term > n.term) violations.push({ tick: t, what: `${id} (term ${n.term}) holds a lease while ${other} leads term ${o.term}` });
        }
      }
    }
    if (violations.length > 0) break;
  }
  if (!violations.length && appliedAt.size < 5) violations.push({ tick: ticks, what: `little progress: ${appliedAt.size} entries applied` });
  return violations;
}

describe('random runs (seeded)', () => {
  test.each(Array.from({ length: 40 }, (_, i) => i + 1))('seed %p: election safety, state machine safety, leader completeness, lease', (seed) => {
    expect(run(seed, 400)).toEqual([]);
  });
});
