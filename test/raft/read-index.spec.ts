import { leaseTicksFor, MessageType, RaftNode } from '../../lib/raft/index.js';
import { Cluster, config, drain, ELECTION } from './helpers.js';

const T = ELECTION;
const reads = (c: Cluster, id: string) => c.readStates.get(id)!.map((r) => [r.context, r.index]);

describe('ReadIndex, safe mode', () => {
  test('the ReadState appears only after a quorum answers a heartbeat round', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const commit = c.raft('a').log.committed;
    expect(c.node('a').readIndex('r1')).toBe(true);
    c.flush('a');
    expect(reads(c, 'a')).toEqual([]);
    const hbs = c.net.pending().filter((m) => m.type === MessageType.Heartbeat);
    expect(hbs.map((m) => [m.to, m.context])).toEqual([
      ['b', 'r1'],
      ['c', 'r1'],
    ]);
    c.settle();
    expect(reads(c, 'a')).toEqual([['r1', commit]]);
  });

  test('one answer besides the leader makes a quorum of three', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.isolate('c');
    c.node('a').readIndex('r1');
    c.settle();
    expect(reads(c, 'a')).toEqual([['r1', 1]]);
  });

  test('without a quorum there is no answer; the periodic heartbeat retries the round', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const cut = c.net.drop((m) => m.type === MessageType.HeartbeatResp);
    c.node('a').readIndex('r1');
    c.settle();
    c.tick(2);
    expect(reads(c, 'a')).toEqual([]);
    c.net.allow(cut);
    c.tick(1);
    expect(reads(c, 'a')).toEqual([['r1', 1]]);
  });

  test('a new leader holds reads until it has committed an entry of its own term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const noApps = c.net.drop((m) => m.type === MessageType.App);
    c.elect('a');
    const a = c.raft('a');
    expect(a.log.term(a.log.committed)).not.toBe(a.term);
    c.node('a').readIndex('r1');
    c.tick(3); // heartbeats are answered, but the no-op is not committed
    expect(reads(c, 'a')).toEqual([]);
    c.net.allow(noApps);
    c.tick(1);
    expect(a.log.committed).toBe(1);
    expect(reads(c, 'a')).toEqual([['r1', 1]]);
  });

  test("a follower's read goes to the leader and comes back as a ReadState", () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.propose('a', 'x');
    c.settle();
    expect(c.node('b').readIndex('f1')).toBe(true);
    c.settle();
    expect(c.net.sent({ type: MessageType.ReadIndex, from: 'b' })).toEqual([expect.objectContaining({ to: 'a', context: 'f1' })]);
    expect(c.net.sent({ type: MessageType.ReadIndexResp, to: 'b' })).toEqual([expect.objectContaining({ index: 2, context: 'f1' })]);
    expect(reads(c, 'b')).toEqual([['f1', 2]]);
    expect(reads(c, 'a')).toEqual([]);
  });

  test('a follower that knows no leader refuses the read', () => {
    const c = new Cluster(['a', 'b', 'c']);
    expect(c.node('b').readIndex('f1')).toBe(false);
  });

  test('reads are released in order: a quorum for a later request confirms the earlier ones', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.drop((m) => m.type === MessageType.Heartbeat && m.context === 'r1'); // r1's own round is lost
    c.node('a').readIndex('r1');
    c.settle();
    c.propose('a', 'x');
    c.settle();
    c.node('a').readIndex('r2');
    c.settle();
    expect(reads(c, 'a')).toEqual([
      ['r1', 1],
      ['r2', 2],
    ]);
  });

  test('a single-member cluster answers at once', () => {
    const n = new RaftNode(config('a', ['a']));
    n.campaign();
    drain(n);
    n.readIndex('r1');
    expect(drain(n).readStates).toEqual([{ index: 1, context: 'r1' }]);
  });
});

describe('ReadIndex, lease mode', () => {
  test('with a valid lease the leader answers at once, without a heartbeat round', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { readOnly: 'lease' } });
    c.elect('a');
    expect(c.node('a').hasValidLease()).toBe(true);
    const before = c.net.trace.length;
    c.node('a').readIndex('l1');
    c.flush('a');
    expect(reads(c, 'a')).toEqual([['l1', 1]]);
    expect(c.net.trace.slice(before)).toEqual([]);
  });

  test('without a valid lease it falls back to a heartbeat round', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { readOnly: 'lease' } });
    c.elect('a');
    c.net.isolate('a');
    c.tick(leaseTicksFor(T, 0.1), ['a']);
    expect(c.node('a').hasValidLease()).toBe(false);
    expect(c.raft('a').role).toBe('leader');
    c.node('a').readIndex('l2');
    c.settle();
    expect(reads(c, 'a')).toEqual([]);
    expect(c.net.sent({ type: MessageType.Heartbeat, from: 'a' }).filter((m) => m.context === 'l2')).toHaveLength(2);
    c.net.heal();
    c.tick(1);
    expect(reads(c, 'a')).toEqual([['l2', 1]]);
  });
});
