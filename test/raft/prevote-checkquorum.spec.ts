import { CAMPAIGN_TRANSFER, MessageType } from '../../lib/raft/index.js';
import { Cluster, ELECTION, msg, send } from './helpers.js';

const T = ELECTION;

describe('PreVote', () => {
  test('a partitioned node that keeps timing out does not raise its term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.raft('a').term;
    c.net.isolate('c');
    c.tick(10 * T);
    expect(c.net.sent({ type: MessageType.PreVote, from: 'c' }).length).toBeGreaterThan(3);
    expect(c.net.sent({ type: MessageType.Vote, from: 'c' })).toEqual([]);
    expect(c.raft('c').term).toBe(term);
    expect(c.raft('c').role).toBe('pre-candidate');
  });

  test('when it rejoins, it does not disrupt the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.raft('a').term;
    c.net.isolate('c');
    c.tick(10 * T);
    c.net.heal();
    c.tick(2 * T);
    expect(c.leader()).toBe('a');
    expect(c.ids.map((id) => c.raft(id).term)).toEqual([term, term, term]);
    expect(c.raft('c').role).toBe('follower');
    expect(c.raft('c').lead).toBe('a');
  });

  test('without PreVote the same node comes back with an inflated term and deposes the leader', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { preVote: false } });
    c.elect('a');
    const term = c.raft('a').term;
    c.net.isolate('c');
    c.tick(10 * T);
    expect(c.raft('c').term).toBeGreaterThan(term + 3);
    c.net.heal();
    c.tick(3 * T);
    expect(c.raft('a').term).toBeGreaterThan(term + 3);
  });

  test('granting a pre-vote changes neither term nor vote of the voter', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.stop('a');
    c.tick(T, ['b', 'c']); // no contact from the leader for T ticks: no longer in its lease
    const b = c.node('b');
    const before = { term: b.core.term, vote: b.core.vote };
    const out = send(b, msg(MessageType.PreVote, 'c', 'b', before.term + 1, { index: b.core.log.lastIndex(), logTerm: b.core.log.lastTerm() }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.PreVoteResp, term: before.term + 1, reject: false })]);
    expect({ term: b.core.term, vote: b.core.vote }).toEqual(before);
  });

  test('a pre-vote from a lower term is rejected with the current term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const out = send(c.node('b'), msg(MessageType.PreVote, 'c', 'b', 0));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.PreVoteResp, term: c.raft('b').term, reject: true })]);
  });
});

describe('CheckQuorum', () => {
  test('a leader that hears from no quorum within an election timeout steps down', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.isolate('a');
    // The round running at the cut still counts the answers from before it; the next one finds nobody.
    c.tick(T - 1, ['a']);
    expect(c.raft('a').role).toBe('leader');
    c.tick(T + 1, ['a']);
    expect(c.raft('a').role).toBe('follower');
  });

  test('a leader that hears from a quorum stays', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.isolate('c');
    c.tick(10 * T);
    expect(c.leader()).toBe('a');
  });
});

describe('leader stickiness', () => {
  function clusterWithLeader() {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.tick(1); // 'b' just heard a heartbeat
    return { c, b: c.node('b'), term: c.raft('a').term };
  }

  test.each([
    ['PreVote', MessageType.PreVote],
    ['Vote', MessageType.Vote],
  ])('a follower that hears from the leader ignores a higher-term %s request', (_name, type) => {
    const { b, term } = clusterWithLeader();
    const out = send(b, msg(type, 'c', 'b', term + 1, { index: 100, logTerm: term }));
    expect(out).toEqual([]);
    expect(b.core.term).toBe(term);
    expect(b.core.lead).toBe('a');
  });

  test('so does the leader itself', () => {
    const { c, term } = clusterWithLeader();
    const out = send(c.node('a'), msg(MessageType.Vote, 'c', 'a', term + 1, { index: 100, logTerm: term }));
    expect(out).toEqual([]);
    expect(c.raft('a').role).toBe('leader');
  });

  test('after an election timeout without the leader, the follower answers again', () => {
    const { c, term } = clusterWithLeader();
    c.stop('a');
    c.tick(T - 1, ['b']);
    expect(send(c.node('b'), msg(MessageType.PreVote, 'c', 'b', term + 1, { index: 100, logTerm: term }))).toEqual([]);
    c.tick(1, ['b']);
    expect(send(c.node('b'), msg(MessageType.PreVote, 'c', 'b', term + 1, { index: 100, logTerm: term }))).toEqual([
      expect.objectContaining({ type: MessageType.PreVoteResp, reject: false }),
    ]);
  });

  test('a forced campaign (leadership transfer) is not ignored', () => {
    const { b, term } = clusterWithLeader();
    const out = send(b, msg(MessageType.Vote, 'c', 'b', term + 1, { index: 100, logTerm: term, context: CAMPAIGN_TRANSFER }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.VoteResp, term: term + 1, reject: false })]);
    expect(b.core.term).toBe(term + 1);
    expect(b.core.vote).toBe('c');
  });

  test('a node cut off from the leader alone cannot take over', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.raft('a').term;
    c.net.cut('a', 'c');
    c.tick(10 * T);
    expect(c.leader()).toBe('a');
    expect(c.raft('b').term).toBe(term);
    expect(c.raft('c').role).toBe('pre-candidate');
  });
});
