import { membershipOf } from '../../lib/raft/membership.js';
import { MessageType, type Message, type Snapshot } from '../../lib/raft/index.js';
import { bytes, Cluster, drain, ELECTION, msg, node, send, stateWith, termsOf } from './helpers.js';

const T = ELECTION;
const IMAGE = bytes('0123456789'.repeat(10)); // 100 bytes: 7 chunks of at most 16
const CHUNK = 16;

/** Leader 'a' compacted its log to index 6 while 'c' was cut off holding only index 1. */
function laggingFollower() {
  const c = new Cluster(['a', 'b', 'c'], { config: { maxSizePerMsg: CHUNK } });
  c.elect('a');
  const cut = c.net.isolate('c');
  for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
  c.settle();
  const snap = c.compact('a', IMAGE);
  c.net.allow(cut);
  return { c, snap };
}

const snaps = (ms: readonly Message[]) => ms.filter((m) => m.type === MessageType.Snap);

describe('snapshots', () => {
  test('a follower that needs compacted entries gets the snapshot in chunks', () => {
    const { c, snap } = laggingFollower();
    expect(snap.meta).toEqual({ index: 6, term: 1, membership: membershipOf(['a', 'b', 'c']) });
    expect(c.raft('a').log.firstIndex()).toBe(7);
    c.tick(1); // a heartbeat answer tells the leader about 'c'

    const chunks = snaps(c.net.sent({ to: 'c' }));
    expect(chunks.map((m) => [m.snapshot!.offset, m.snapshot!.data.length])).toEqual([
      [0, 16],
      [16, 16],
      [32, 16],
      [48, 16],
      [64, 16],
      [80, 16],
      [96, 4],
    ]);
    const cr = c.raft('c');
    expect(cr.log.snapshotIndex()).toBe(6);
    expect(cr.log.applied).toBe(6);
    expect(c.disks.get('c')!.snapshot).toEqual(snap);
    expect(termsOf(cr)).toEqual(termsOf(c.raft('a')));
    expect(c.raft('a').prs.get('c')!.state).toBe('replicate');

    // Replication goes on from the snapshot.
    c.propose('a', 'after');
    c.settle();
    expect(cr.log.lastIndex()).toBe(7);
    expect(c.applied.get('c')!.map((e) => e.index)).toEqual([1, 7]);
  });

  test('chunks out of order and duplicated still restore the image', () => {
    const { c } = laggingFollower();
    c.net.drop((m) => m.type === MessageType.Snap);
    c.tick(1);
    const chunks = snaps(c.net.dropped);
    expect(chunks).toHaveLength(7);
    c.net.heal();
    c.deliver([chunks[3]!, chunks[3]!, ...[...chunks].reverse(), chunks[0]!]);
    expect(c.raft('c').log.snapshotIndex()).toBe(6);
    expect(c.disks.get('c')!.snapshot!.data).toEqual(IMAGE);
  });

  test('the snapshot comes out in a Ready; applied moves to its index only on advance', () => {
    const { c } = laggingFollower();
    c.net.drop((m) => m.type === MessageType.Snap);
    c.tick(1);
    const chunks = snaps(c.net.dropped);
    const n = c.node('c');
    for (const m of chunks) n.step(m);
    expect(n.core.log.applied).toBe(1);

    const rd = n.ready();
    expect(rd.snapshot!.meta.index).toBe(6);
    expect(rd.snapshot!.data).toEqual(IMAGE);
    expect(rd.mustSync).toBe(true);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toEqual([expect.objectContaining({ type: MessageType.AppResp, to: 'a', index: 6, reject: false })]);
    expect(n.core.log.applied).toBe(1); // the application still holds its old state
    c.process('c', rd);
    n.advance(rd);
    expect(n.core.log.applied).toBe(6);
    expect(n.hasReady()).toBe(false);
  });

  test('a restarted follower recovers from the snapshot it persisted', () => {
    const { c, snap } = laggingFollower();
    c.tick(1);
    c.stop('c');
    const n = c.start('c');
    expect(n.core.log.snapshotIndex()).toBe(6);
    expect(n.core.log.committed).toBe(6);
    expect(n.core.snapshot).toEqual(snap);
  });

  test('a lost chunk is resent after the snapshot timeout (2 electionTick)', () => {
    const { c } = laggingFollower();
    let lost = false;
    c.net.drop((m) => {
      if (lost || m.type !== MessageType.Snap || m.snapshot!.offset !== CHUNK) return false;
      return (lost = true);
    });
    c.tick(1);
    expect(lost).toBe(true);
    const sentAt = snaps(c.net.trace)[0]!.stamp;
    expect(c.raft('a').now).toBe(sentAt);
    expect(c.raft('a').prs.get('c')!.state).toBe('snapshot');

    c.tick(2 * T - 1);
    expect(c.raft('c').log.snapshotIndex()).toBe(0);
    expect(snaps(c.net.trace)).toHaveLength(7);
    c.tick(1);
    expect(snaps(c.net.trace)).toHaveLength(14);
    expect(c.raft('c').log.snapshotIndex()).toBe(6);
    expect(c.disks.get('c')!.snapshot!.data).toEqual(IMAGE);
  });
});

test('a probe rejected below the snapshot base goes straight to a snapshot', () => {
  // 'b' compacted to 4 while 'c' (holding only index 1) was away, then became leader with entries up to 7.
  const c = new Cluster(['a', 'b', 'c']);
  c.elect('a');
  c.net.isolate('c');
  for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
  c.settle();
  c.compact('b', IMAGE, 4);
  c.node('a').transferLeader('b');
  c.settle();
  expect(c.leader()).toBe('b');
  c.net.heal();
  const before = c.net.trace.length;
  c.tick(1);
  const toC = c.net.trace.slice(before).filter((m) => m.from === 'b' && m.to === 'c' && m.type !== MessageType.Heartbeat);
  const firstSnap = toC.findIndex((m) => m.type === MessageType.Snap);
  // One probe (prevIndex 6), rejected with hint 1: below b's base 4, so the next thing sent is the snapshot.
  expect(toC.slice(0, firstSnap).map((m) => [m.type, m.index])).toEqual([[MessageType.App, 6]]);
  expect(c.raft('c').log.snapshotIndex()).toBe(4);
  expect(termsOf(c.raft('c'))).toEqual(termsOf(c.raft('b')));
});

describe('snapshot receiver', () => {
  const chunk = (meta: Snapshot['meta']) =>
    msg(MessageType.Snap, 'a', 'b', 1, { snapshot: { meta, offset: 0, total: 1, data: new Uint8Array([7]) } });
  const voters = ['a', 'b', 'c'];

  test('ignores a stale snapshot (index <= commit)', () => {
    const b = node('b', voters, { state: stateWith([1, 1, 1, 1, 1], { commit: 5 }) });
    const out = send(b, chunk({ index: 3, term: 1, membership: membershipOf(voters) }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.AppResp, index: 5, reject: false })]);
    expect(b.core.pendingSnapshot).toBeNull();
    expect(termsOf(b.core)).toEqual([1, 1, 1, 1, 1]);
  });

  test('a snapshot whose last entry we hold only advances the commit index', () => {
    const b = node('b', voters, { state: stateWith([1, 1, 1, 1, 1], { commit: 2 }) });
    const out = send(b, chunk({ index: 4, term: 1, membership: membershipOf(voters) }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.AppResp, index: 4 })]);
    expect(b.core.pendingSnapshot).toBeNull();
    expect(b.core.log.committed).toBe(4);
    expect(b.core.log.lastIndex()).toBe(5);
  });

  test('a newer snapshot replaces a log that does not hold its last entry', () => {
    const b = node('b', voters, { state: stateWith([1, 1, 1], { commit: 1, term: 2 }) });
    b.step({ ...chunk({ index: 4, term: 2, membership: membershipOf(voters) }), term: 2 });
    const d = drain(b);
    expect(d.readies[0]!.snapshot!.meta.index).toBe(4);
    expect(d.messages).toEqual([expect.objectContaining({ type: MessageType.AppResp, index: 4 })]);
    expect(b.core.log.snapshotIndex()).toBe(4);
    expect(b.core.log.lastIndex()).toBe(4);
    expect(b.core.log.applied).toBe(4);
  });

  test('an empty image arrives as a single empty chunk', () => {
    const b = node('b', voters, { state: stateWith([1], { commit: 1 }) });
    const out = send(b, msg(MessageType.Snap, 'a', 'b', 1, { snapshot: { meta: { index: 3, term: 1, membership: membershipOf(voters) }, offset: 0, total: 0, data: new Uint8Array(0) } }));
    expect(out).toEqual([expect.objectContaining({ type: MessageType.AppResp, index: 3 })]);
    expect(b.core.log.snapshotIndex()).toBe(3);
  });
});
