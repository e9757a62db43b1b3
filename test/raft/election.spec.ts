import { MessageType, NONE, RaftNode } from '../../lib/raft/index.js';
import { Cluster, config, ELECTION, granted, msg, node, send, stateWith, tickN } from './helpers.js';

const T = ELECTION;

describe('election timeout', () => {
  test.each([
    [0, T],
    [0.25, T + 2],
    [0.5, T + 5],
    [0.999, 2 * T - 1],
  ])('random() = %p: a follower campaigns after exactly %p ticks, within [T, 2T)', (r, timeout) => {
    const n = node('a', ['a', 'b', 'c'], { config: { random: () => r } });
    tickN(n, timeout - 1);
    expect(n.core.role).toBe('follower');
    const out = tickN(n, 1);
    expect(n.core.role).toBe('pre-candidate');
    expect(out.map((m) => [m.type, m.to])).toEqual([
      [MessageType.PreVote, 'b'],
      [MessageType.PreVote, 'c'],
    ]);
  });
});

describe('winning an election', () => {
  test('a follower that times out becomes pre-candidate, then candidate, then leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    // 'a' has the shortest timeout (1.5 T); one tick short of it nothing happens.
    c.tick(T + T / 2 - 1);
    expect(c.raft('a').role).toBe('follower');

    c.node('a').tick();
    expect(c.raft('a').role).toBe('pre-candidate');
    expect(c.raft('a').term).toBe(0); // a pre-election does not touch the term

    c.hop(); // PreVote out
    c.hop(); // PreVoteResp back
    expect(c.raft('a').role).toBe('candidate');
    expect(c.raft('a').term).toBe(1);
    expect(c.raft('a').vote).toBe('a');

    c.hop(); // Vote out
    c.hop(); // VoteResp back
    expect(c.raft('a').role).toBe('leader');
    expect(c.raft('a').term).toBe(1);

    c.settle();
    for (const id of ['b', 'c']) {
      expect(c.raft(id).role).toBe('follower');
      expect(c.raft(id).lead).toBe('a');
      expect(c.raft(id).vote).toBe('a');
    }
  });

  test('a single-member cluster leads at once after campaign()', () => {
    const n = new RaftNode(config('a', ['a']));
    n.campaign();
    expect(n.core.role).toBe('leader');
    expect(n.core.term).toBe(1);
  });

  test('a candidate that a majority rejects steps down', () => {
    // All at term 1; 'a' has an empty log, 'b' and 'c' hold an entry, so neither grants.
    const c = new Cluster(['a', 'b', 'c'], {
      config: { preVote: false },
      states: { a: stateWith([], { term: 1 }), b: stateWith([1]), c: stateWith([1]) },
    });
    c.tick(T);
    c.node('a').campaign();
    expect(c.raft('a').role).toBe('candidate');
    c.settle();
    expect(c.raft('a').role).toBe('follower');
    expect(c.raft('a').term).toBe(2);
    expect(c.leader()).toBeUndefined();
  });

  test('with PreVote, a candidate that cannot win does not even raise its term', () => {
    const c = new Cluster(['a', 'b', 'c'], { states: { a: stateWith([], { term: 1 }), b: stateWith([1]), c: stateWith([1]) } });
    c.tick(T);
    c.node('a').campaign();
    c.settle();
    expect(c.raft('a').role).toBe('follower');
    expect(c.ids.map((id) => c.raft(id).term)).toEqual([1, 1, 1]);
  });
});

describe('voting (§5.2, §5.4.1)', () => {
  /** A voter past its boot quiet period. */
  function voter(terms: number[] = [], term = terms[terms.length - 1] ?? 0): RaftNode {
    const n = node('b', ['a', 'b', 'c'], { state: stateWith(terms, { term }) });
    tickN(n, T);
    return n;
  }
  const vote = (from: string, term: number, index = 0, logTerm = 0) => msg(MessageType.Vote, from, 'b', term, { index, logTerm });

  test('grants at most one vote per term', () => {
    const b = voter();
    expect(send(b, vote('a', 1))).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 'a', term: 1, reject: false })]);
    expect(send(b, vote('c', 1))).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 'c', reject: true })]);
    // Asking again is fine: the vote is the same.
    expect(send(b, vote('a', 1))).toEqual([expect.objectContaining({ to: 'a', reject: false })]);
    expect(b.core.vote).toBe('a');
  });

  test('the vote is persisted before the answer and survives a restart', () => {
    const b = voter();
    b.step(vote('a', 1));
    const rd = b.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages).toEqual([expect.objectContaining({ type: MessageType.VoteResp, reject: false })]);
    b.advance(rd);

    const restarted = node('b', ['a', 'b', 'c'], { state: { hardState: rd.hardState!, snapshot: null, entries: [] } });
    expect(granted(send(restarted, vote('c', 1)))).toBe(false);
    tickN(restarted, T); // past the boot quiet period: only the persisted vote stands in the way
    expect(restarted.core.term).toBe(1);
    expect(granted(send(restarted, vote('c', 1)))).toBe(false);
    expect(granted(send(restarted, vote('a', 1)))).toBe(true);
  });

  test('a follower that knows the leader of the term grants no vote in it', () => {
    const b = voter([], 1);
    send(b, msg(MessageType.Heartbeat, 'a', 'b', 1));
    expect(b.core.lead).toBe('a');
    expect(granted(send(b, vote('c', 1)))).toBe(false);
  });

  describe('rejects a candidate whose log is less up to date (§5.4.1)', () => {
    // The voter's log: terms 1, 1, 2 (last index 3, last term 2).
    test.each([
      ['older last term, longer log', 5, 1, true],
      ['same last term, shorter log', 2, 2, true],
      ['same last term, same length', 3, 2, false],
      ['same last term, longer log', 4, 2, false],
      ['newer last term, shorter log', 1, 3, false],
    ])('%s (index %p, term %p): reject = %p', (_name, index, logTerm, reject) => {
      const b = voter([1, 1, 2], 3);
      expect(send(b, vote('a', 4, index, logTerm))).toEqual([expect.objectContaining({ type: MessageType.VoteResp, reject })]);
      // The higher term is adopted either way.
      expect(b.core.term).toBe(4);
    });
  });
});

describe('terms', () => {
  test('a higher term in any message converts a leader to follower', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const a = c.node('a');
    a.step(msg(MessageType.HeartbeatResp, 'b', 'a', 5));
    expect(a.core.role).toBe('follower');
    expect(a.core.term).toBe(5);
    expect(a.core.vote).toBe(NONE);
    expect(a.core.lead).toBe(NONE);
  });

  test('an App with a higher term makes its sender the leader', () => {
    const b = node('b');
    send(b, msg(MessageType.App, 'a', 'b', 3));
    expect(b.core.term).toBe(3);
    expect(b.core.lead).toBe('a');
  });

  test('a candidate that hears from a leader of its term becomes its follower', () => {
    const n = node('b', ['a', 'b', 'c'], { config: { preVote: false } });
    tickN(n, T);
    n.campaign();
    expect(n.core.role).toBe('candidate');
    send(n, msg(MessageType.Heartbeat, 'a', 'b', n.core.term));
    expect(n.core.role).toBe('follower');
    expect(n.core.lead).toBe('a');
  });

  test('a lower-term App is answered with the current term, and the stale leader steps down', () => {
    const b = node('b', ['a', 'b', 'c'], { state: stateWith([], { term: 3 }) });
    const out = send(b, msg(MessageType.App, 'a', 'b', 2, { index: 0, logTerm: 0 }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.AppResp, to: 'a', term: 3 })]);
    expect(b.core.term).toBe(3);

    // The old leader, in a cluster where the rest moved on without it.
    const c = new Cluster(['a', 'b', 'c'], { config: { checkQuorum: false } });
    c.elect('a');
    c.net.isolate('a');
    c.tick(T, ['b', 'c']); // the shortest timeout is 1.5 T from b's last contact with 'a'
    c.tick(T, ['b', 'c']);
    expect(c.raft('b').role).toBe('leader');
    expect(c.raft('a').role).toBe('leader'); // cut off and without CheckQuorum: still believes it leads
    c.net.heal();
    c.tick(1, ['a']); // its heartbeat reaches the others, whose answer carries the newer term
    expect(c.raft('a').role).toBe('follower');
    expect(c.raft('a').term).toBe(c.raft('b').term);
    expect(c.leader()).toBe('b');
  });
});

/*
 * Regression (fixed in the core): a candidate used to record a VoteResp/PreVoteResp from any sender, so with voters
 * {a, b, c} its own vote plus one grant from a non-member 'z' won. Only members' votes count (as etcd's VoteResult
 * over Config.Voters).
 */
describe('vote counting', () => {
  test('a candidate counts only votes from voters', () => {
    const a = node('a', ['a', 'b', 'c'], { config: { preVote: false } });
    tickN(a, T);
    a.campaign();
    send(a, msg(MessageType.VoteResp, 'z', 'a', 1));
    expect(a.core.role).toBe('candidate');
  });

  test('a grant from a voter does win', () => {
    const a = node('a', ['a', 'b', 'c'], { config: { preVote: false } });
    tickN(a, T);
    a.campaign();
    send(a, msg(MessageType.VoteResp, 'b', 'a', 1));
    expect(a.core.role).toBe('leader');
  });
});
