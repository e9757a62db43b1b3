import { CAMPAIGN_TRANSFER, MessageType } from '../../lib/raft/index.js';
import { Cluster, ELECTION, termsOf } from './helpers.js';

const T = ELECTION;

describe('leadership transfer (thesis §3.10)', () => {
  test('to an up-to-date follower: TimeoutNow at once, and the target wins a forced election', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const term = c.raft('a').term;
    expect(c.node('a').transferLeader('b')).toBe(true);
    c.flush('a');
    expect(c.net.pending().map((m) => [m.type, m.to])).toEqual([[MessageType.TimeoutNow, 'b']]);
    c.settle();
    expect(c.leader()).toBe('b');
    expect(c.raft('b').term).toBe(term + 1);
    expect(c.raft('a').role).toBe('follower');
    // The campaign skipped PreVote and was marked, so followers in the old leader's lease still voted.
    expect(c.net.sent({ type: MessageType.PreVote, from: 'b' })).toEqual([]);
    expect(c.net.sent({ type: MessageType.Vote, from: 'b' }).every((m) => m.context === CAMPAIGN_TRANSFER)).toBe(true);
  });

  test('to a lagging follower: it is caught up first, then told to campaign', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const lag = c.net.drop((m) => m.type === MessageType.App && m.to === 'c');
    c.propose('a', 'x', 'y');
    c.settle();
    expect(c.raft('c').log.lastIndex()).toBe(1);
    c.net.allow(lag);
    const before = c.net.trace.length;
    c.node('a').transferLeader('c');
    c.settle();
    const toC = c.net.trace.slice(before).filter((m) => m.to === 'c' && m.from === 'a');
    const firstTimeoutNow = toC.findIndex((m) => m.type === MessageType.TimeoutNow);
    expect(firstTimeoutNow).toBeGreaterThan(0);
    expect(toC.slice(0, firstTimeoutNow).some((m) => m.type === MessageType.App && m.entries.length > 0)).toBe(true);
    expect(c.leader()).toBe('c');
    expect(termsOf(c.raft('c'))).toEqual([1, 1, 1, 2]); // no-op, x, y, and the new leader's no-op
    expect(termsOf(c.raft('a'))).toEqual(termsOf(c.raft('c')));
  });

  test('proposals are dropped while a transfer is under way', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.drop((m) => m.to === 'c' && m.type !== MessageType.Heartbeat); // c never catches up
    c.propose('a', 'x');
    c.settle();
    c.node('a').transferLeader('c');
    c.settle();
    expect(c.raft('a').role).toBe('leader');
    expect(c.propose('a', 'y')).toBeNull();
  });

  test('a transfer that does not complete within an election timeout is abandoned', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.drop((m) => m.type === MessageType.TimeoutNow);
    c.node('a').transferLeader('b');
    c.settle();
    c.tick(T - 1);
    expect(c.propose('a', 'y')).toBeNull();
    c.tick(1);
    expect(c.leader()).toBe('a');
    expect(c.propose('a', 'y')).not.toBeNull();
  });

  test('only a leader transfers, and only to another voter', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.node('b').transferLeader('c')).toBe(false);
    expect(c.node('a').transferLeader('a')).toBe(false);
    expect(c.node('a').transferLeader('z')).toBe(false);
  });
});
