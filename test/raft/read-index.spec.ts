import { leaseTicksFor, MessageType, RaftNode, type Message } from '../../lib/raft/index.js';
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
    // A heartbeat round tagged for this read (the tag need not be the caller's context).
    const hbs = c.net.pending().filter((m) => m.type === MessageType.Heartbeat);
    expect(hbs.map((m) => m.to)).toEqual(['b', 'c']);
    expect(hbs.every((m) => m.context !== '')).toBe(true);
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
    let firstRound = true;
    c.net.drop((m) => firstRound && m.type === MessageType.Heartbeat); // r1's own round is lost
    c.node('a').readIndex('r1');
    c.settle();
    c.propose('a', 'x');
    c.settle();
    expect(reads(c, 'a')).toEqual([]);
    firstRound = false;
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
    const before = c.net.trace.length;
    c.node('a').readIndex('l2');
    c.settle();
    expect(reads(c, 'a')).toEqual([]);
    const round = c.net.trace.slice(before).filter((m) => m.type === MessageType.Heartbeat && m.context !== '');
    expect(round.map((m) => m.to)).toEqual(['b', 'c']);
    c.net.heal();
    c.tick(1);
    expect(reads(c, 'a')).toEqual([['l2', 1]]);
  });
});

/*
 * CORE BUG (ReadIndex, safe mode): a read is released once a quorum answered *a* heartbeat carrying its context, and
 * contexts are the caller's strings. When a context is used again (RaftRuntime builds them as `${nodeId}:${seq}` with
 * `seq` restarting at 0 after a restart, so "b:1" recurs), a late HeartbeatResp from an earlier round with the same
 * context counts toward the new request: the read is released without any acknowledgement of a heartbeat sent after
 * it was made, i.e. without proof that this node was still leader when the read began. Below, the old leader answers
 * a read at an index that misses a write a newer leader had already committed.
 * The fix: each pending read is keyed by a leader-made key (term and sequence number) that the heartbeat round
 * carries; the ReadState still carries the caller's context. Counting only acks whose `stamp` is >= the tick the read
 * was added would not be enough: here the old leader's clock does not move, so both rounds have the same stamp. The
 * runtime's contexts also carry a per-process random prefix, so they are unique across restarts.
 */
test('a read is confirmed only by answers to heartbeats sent after it, even when its context was used before', () => {
  const c = new Cluster(['a', 'b', 'c']);
  c.elect('a');
  // Round 1 for context 'r': b answers at once, c's answer is delayed in the network.
  const late: Message[] = [];
  const holdLate = c.net.drop((m) => {
    const hold = m.type === MessageType.HeartbeatResp && m.from === 'c' && m.context === 'r';
    if (hold) late.push(m);
    return hold;
  });
  c.node('a').readIndex('r');
  c.settle();
  expect(reads(c, 'a')).toEqual([['r', 1]]);
  c.net.allow(holdLate);

  // 'a' is cut off (and its clock stalls); b and c move on: b leads term 2 and commits a write.
  c.net.isolate('a');
  c.tick(2 * T, ['b', 'c']);
  expect(c.raft('b').role).toBe('leader');
  const write = c.propose('b', 'w')!;
  c.settle();
  expect(c.raft('c').log.committed).toBeGreaterThanOrEqual(write.index);

  // The context comes round again on 'a', which cannot reach anybody; then c's late answer from round 1 arrives.
  c.node('a').readIndex('r');
  c.settle();
  c.deliver(late);
  const released = c.readStates.get('a')!.slice(1);
  expect(released.filter((r) => r.index < write.index)).toEqual([]);
});
