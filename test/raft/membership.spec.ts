import {
  decodeMembership,
  encodeMembership,
  invalidChange,
  isMembershipEntry,
  MembershipError,
  MessageType,
  message,
  type Entry,
  type Member,
  type Membership,
} from '../../lib/raft/index.js';
import { bytes, Cluster, ELECTION, stateWith } from './helpers.js';

const T = ELECTION;
const voter = (id: string): Member => ({ id, address: `${id}:7001`, role: 'voter' });
const learner = (id: string): Member => ({ id, address: `${id}:7001`, role: 'learner' });
const conf = (...members: Member[]): Membership => ({ members });
const ABC = conf(voter('a'), voter('b'), voter('c'));

/** a, b, c vote; d is running but not in anybody's configuration yet (it waits to be added). */
function withSpare(extra: Record<string, object> = {}) {
  const c = new Cluster(['a', 'b', 'c', 'd'], {
    config: { membership: ABC },
    configs: { d: { membership: conf() }, ...extra },
  });
  c.elect('a');
  return c;
}

/** Proposes `m` on the leader and settles; returns where it went. */
function change(c: Cluster, id: string, m: Membership) {
  const at = c.raft(id).proposeMembership(m);
  if (typeof at === 'string') throw new Error(at);
  c.settle();
  return at;
}

const ids = (m: Membership) => m.members.map((x) => `${x.id}:${x.role}`).join(',');

describe('configuration entries', () => {
  test('round-trip, and are told apart from application data by their first byte', () => {
    const m = conf(voter('a'), { ...learner('b'), pinned: true }, learner('c'));
    const data = encodeMembership(m);
    expect(isMembershipEntry(data)).toBe(true);
    expect(decodeMembership(data)).toEqual(m);
    expect(isMembershipEntry(new Uint8Array(0))).toBe(false); // the no-op
    expect(isMembershipEntry(Uint8Array.of(0x93, 1, 2, 3))).toBe(false); // a MessagePack array
  });

  test('a malformed configuration entry is refused, not guessed at', () => {
    expect(() => decodeMembership(Uint8Array.of(0xc1, 0x7b))).toThrow(MembershipError);
    expect(() => decodeMembership(encodeMembership(conf(voter('a'), voter('a'))))).toThrow(/appears twice/);
  });

  test('one voter at a time; learners do not count', () => {
    expect(invalidChange(ABC, conf(voter('a'), voter('b'), voter('c'), voter('d')))).toBeNull();
    expect(invalidChange(ABC, conf(voter('a'), voter('b'), voter('c'), voter('d'), voter('e')))).toMatch(/2 voters at once/);
    expect(invalidChange(ABC, conf(voter('a'), voter('b'), voter('d')))).toMatch(/2 voters at once/); // a replace is two
    expect(invalidChange(ABC, conf(voter('a'), voter('b'), voter('c'), learner('d'), learner('e')))).toBeNull();
    expect(invalidChange(conf(voter('a')), conf(learner('a')))).toMatch(/at least one voter/);
  });
});

describe('membership changes (thesis §4.1)', () => {
  test('a learner replicates the log and applies it, knows the leader, and never campaigns', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    c.propose('a', 'x');
    c.settle();
    const d = c.raft('d');
    expect(ids(d.membership)).toBe('a:voter,b:voter,c:voter,d:learner');
    expect(d.lead).toBe('a');
    expect(c.applied.get('d')!.map((e) => e.index)).toEqual(c.applied.get('a')!.map((e) => e.index));

    c.stop('a');
    c.tick(4 * T, ['b', 'c', 'd']);
    expect(c.softStates.get('d')!.some((s) => s.role !== 'follower')).toBe(false);
    expect(['b', 'c']).toContain(c.leader());
    expect(c.net.sent({ from: 'd', type: MessageType.PreVote })).toHaveLength(0);
  });

  test('a learner counts toward no commit, and its acknowledgement toward no read', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    c.net.isolate('b');
    c.net.isolate('c');
    const at = c.propose('a', 'lonely')!;
    c.settle();
    expect(c.raft('d').log.lastIndex()).toBe(at.index); // replicated to the learner…
    expect(c.raft('a').log.committed).toBeLessThan(at.index); // …which is no quorum
    c.node('d').readIndex('r1');
    c.tick(2, ['a', 'd']);
    expect(c.readStates.get('d')).toEqual([]);
  });

  test('the change is in force on each member as soon as it is in its log, before it commits', () => {
    const c = withSpare();
    c.net.isolate('c');
    c.net.drop((m) => m.type === MessageType.AppResp && m.from === 'b'); // a cannot commit
    c.raft('a').proposeMembership(conf(voter('a'), voter('b'), voter('c'), learner('d')));
    c.settle();
    expect(c.raft('a').log.committed).toBeLessThan(c.raft('a').log.lastIndex());
    expect(c.raft('a').pendingMembershipIndex()).toBe(c.raft('a').log.lastIndex());
    expect(ids(c.raft('b').membership)).toBe('a:voter,b:voter,c:voter,d:learner');
    expect(c.raft('a').prs.has('d')).toBe(true);
  });

  test('a follower reverts to the previous configuration when the leader overwrites the entry', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { membership: ABC } });
    c.elect('a');
    const b = c.raft('b');
    // b holds an uncommitted change from a term-1 leader at index 2…
    const stale = { term: 1, index: 2, data: encodeMembership(conf(voter('a'), voter('b'), voter('c'), learner('x'))) };
    c.node('b').step(msgApp('a', 'b', 1, 1, 1, [stale]));
    expect(b.membership.members).toHaveLength(4);
    // …and a term-2 leader replaces index 2 with an ordinary entry.
    c.node('b').step(msgApp('c', 'b', 2, 1, 1, [{ term: 2, index: 2, data: bytes('x') }]));
    expect(ids(b.membership)).toBe('a:voter,b:voter,c:voter');
  });

  test('one change at a time', () => {
    const c = withSpare();
    c.net.drop((m) => m.type === MessageType.AppResp); // nothing commits
    expect(typeof c.raft('a').proposeMembership(conf(voter('a'), voter('b'), voter('c'), learner('d')))).toBe('object');
    expect(c.raft('a').proposeMembership(conf(voter('a'), voter('b'), voter('c')))).toMatch(/another membership change/);
  });

  test('a new leader first commits an entry of its own term (it cannot see an earlier change is pending)', () => {
    const c = new Cluster(['a', 'b', 'c', 'd'], { config: { membership: ABC }, configs: { d: { membership: conf() } } });
    c.net.drop((m) => m.type === MessageType.AppResp);
    c.elect('a');
    expect(c.raft('a').proposeMembership(conf(voter('a'), voter('b'), voter('c'), learner('d')))).toMatch(/not yet committed an entry of its term/);
    c.net.heal();
    c.tick(1);
    expect(typeof c.raft('a').proposeMembership(conf(voter('a'), voter('b'), voter('c'), learner('d')))).toBe('object');
  });

  test('the leader cannot remove or demote itself, nor lose the last voter', () => {
    const c = withSpare();
    expect(c.raft('a').proposeMembership(conf(voter('b'), voter('c')))).toMatch(/transfer leadership first/);
    expect(c.raft('a').proposeMembership(conf(learner('a'), voter('b'), voter('c')))).toMatch(/transfer leadership first/);
    expect(c.raft('b').proposeMembership(conf(voter('a'), voter('b')))).toMatch(/not the leader/);
  });

  test('promote: the new voter counts toward commits; remove: the old one no longer does', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), voter('d')));
    expect(c.raft('c').voters).toEqual(['a', 'b', 'c', 'd']);
    // Four voters: a and b alone are no majority.
    c.net.isolate('c');
    c.net.isolate('d');
    const at = c.propose('a', 'needs three')!;
    c.settle();
    expect(c.raft('a').log.committed).toBeLessThan(at.index);
    c.net.heal();
    c.tick(2); // heartbeats find the followers that missed the entry
    expect(c.raft('a').log.committed).toBeGreaterThanOrEqual(at.index);

    // Remove c, which is then cut off: a, b, d are a quorum of three.
    change(c, 'a', conf(voter('a'), voter('b'), voter('d')));
    c.net.isolate('c');
    const next = c.propose('a', 'without c')!;
    c.settle();
    expect(c.raft('a').log.committed).toBeGreaterThanOrEqual(next.index);
    expect(c.raft('a').prs.has('c')).toBe(false);
  });

  test('a removed member that never heard of its removal cannot disrupt the others (pre-vote, stickiness)', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b')));
    c.propose('a', 'committed without c');
    c.settle();
    expect(c.raft('b').voters).toEqual(['a', 'b']);
    expect(c.raft('a').prs.has('c')).toBe(false); // the leader no longer replicates to c…
    expect(c.raft('c').voters).toEqual(['a', 'b', 'c']); // …so c still thinks it votes
    const term = c.raft('a').term;
    c.tick(5 * T);
    expect(c.net.sent({ from: 'c', type: MessageType.PreVote }).length).toBeGreaterThan(0);
    expect(c.leader()).toBe('a');
    expect(c.raft('a').term).toBe(term);
    expect(c.raft('c').role).not.toBe('leader');
  });

  test('a member that applied its own removal stops campaigning', () => {
    const c = withSpare();
    // c learns of its removal (it received the entry before the leader's configuration dropped it, as a restart of a
    // follower that held it would): it is no longer promotable.
    c.node('c').step(msgApp('a', 'c', c.raft('a').term, c.raft('c').log.lastIndex(), c.raft('c').log.lastTerm(), [
      { term: c.raft('a').term, index: c.raft('c').log.lastIndex() + 1, data: encodeMembership(conf(voter('a'), voter('b'))) },
    ]));
    c.settle();
    expect(c.raft('c').voters).toEqual(['a', 'b']);
    c.net.isolate('c');
    const before = c.net.sent({ from: 'c', type: MessageType.PreVote }).length;
    c.tick(5 * T, ['c']);
    expect(c.net.sent({ from: 'c', type: MessageType.PreVote })).toHaveLength(before);
    expect(c.raft('c').role).toBe('follower');
  });

  test('a learner is no target for a leadership transfer', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    expect(c.raft('a').transferLeader('d')).toBe(false);
  });

  test('the configuration travels in snapshots: a learner catching up by snapshot learns it', () => {
    const c = withSpare();
    c.net.isolate('d');
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
    c.settle();
    const snap = c.compact('a', bytes('image'));
    expect(ids(snap.meta.membership)).toBe('a:voter,b:voter,c:voter,d:learner');
    c.net.heal();
    c.tick(2);
    const d = c.raft('d');
    expect(d.log.snapshotIndex()).toBe(snap.meta.index);
    expect(ids(d.membership)).toBe('a:voter,b:voter,c:voter,d:learner');
    // It restarts from its snapshot with the same configuration.
    c.stop('d');
    c.start('d');
    expect(ids(c.raft('d').membership)).toBe('a:voter,b:voter,c:voter,d:learner');
  });

  test('a restarted member takes its configuration from its log, not from its start-up options', () => {
    const c = withSpare();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    c.stop('b');
    c.start('b');
    expect(ids(c.raft('b').membership)).toBe('a:voter,b:voter,c:voter,d:learner');
    c.stop('d');
    c.start('d');
    expect(ids(c.raft('d').membership)).toBe('a:voter,b:voter,c:voter,d:learner');
  });

  test('the snapshot of an index carries the configuration in force at that index', () => {
    const c = withSpare();
    c.propose('a', 'before');
    c.settle();
    const before = c.raft('a').log.lastIndex();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    expect(ids(c.raft('a').membershipAt(before))).toBe('a:voter,b:voter,c:voter');
    expect(ids(c.raft('a').membershipAt(c.raft('a').log.lastIndex()))).toBe('a:voter,b:voter,c:voter,d:learner');
  });

  test('the first leader of an empty log writes the configuration as entry 1; later leaders write an empty no-op', () => {
    const c = withSpare();
    expect(c.raft('a').log.slice(1, 2)![0]!.data).toEqual(encodeMembership(ABC));
    c.stop('a');
    c.tick(4 * T, ['b', 'c']);
    const next = c.leader()!;
    const last = c.raft(next).log.lastIndex();
    expect(c.raft(next).log.slice(last, last + 1)![0]!.data).toEqual(new Uint8Array(0));
  });

  // Simulator seed 1008 (--membership --strict-snapshots): a joiner replicating from index 1 did not know the
  // configuration below the entry that added it, so its snapshots there carried an empty one.
  test('a node added later and replicating from index 1 knows the configuration at every index', () => {
    const c = withSpare();
    c.propose('a', 'x');
    c.settle();
    change(c, 'a', conf(voter('a'), voter('b'), voter('c'), learner('d')));
    const d = c.raft('d');
    for (let i = 1; i <= d.log.lastIndex(); i++) expect(ids(d.membershipAt(i))).toBe(ids(c.raft('a').membershipAt(i)));
  });

  test('a node started with an empty configuration and no log waits to be added', () => {
    const c = new Cluster(['a', 'b'], { configs: { a: { membership: conf(voter('a')) }, b: { membership: conf() } }, states: { a: stateWith([]) } });
    c.tick(5 * T);
    expect(c.raft('b').role).toBe('follower');
    expect(c.net.sent({ from: 'b' })).toHaveLength(0);
  });
});

function msgApp(from: string, to: string, term: number, index: number, logTerm: number, entries: Entry[]) {
  return message({ type: MessageType.App, from, to, term, logTerm, index, entries });
}
