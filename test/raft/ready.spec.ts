import { MessageType, RaftNode, encodeMembership, type Entry, type Ready } from '../../lib/raft/index.js';
import { bytes, Cluster, config, drain, msg, node } from './helpers.js';

const app = (term: number, prevIndex: number, prevTerm: number, terms: number[], commit = 0) =>
  msg(MessageType.App, 'a', 'b', term, {
    index: prevIndex,
    logTerm: prevTerm,
    commit,
    entries: terms.map((t, i) => ({ term: t, index: prevIndex + 1 + i, data: bytes('e') })),
  });

describe('Ready / advance', () => {
  test('a Ready that carries new entries must be synced, and its acknowledgement goes out with it', () => {
    const b = node('b');
    b.step(app(1, 0, 0, [1, 1]));
    const rd = b.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.mustSync).toBe(true);
    // The AppResp acknowledges entries of this very Ready: the caller persists them before sending it.
    expect(rd.messages).toEqual([expect.objectContaining({ type: MessageType.AppResp, index: 2 })]);
    b.advance(rd);
  });

  test('a change of term or vote must be synced', () => {
    const b = node('b');
    b.step(msg(MessageType.Heartbeat, 'a', 'b', 3));
    const rd = b.ready();
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toEqual({ term: 3, vote: '', commit: 0 });
    expect(rd.mustSync).toBe(true);
  });

  test('a change of the commit index alone need not be', () => {
    const b = node('b');
    b.step(app(1, 0, 0, [1, 1]));
    drain(b);
    b.step(msg(MessageType.Heartbeat, 'a', 'b', 1, { commit: 2 }));
    const rd = b.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: '', commit: 2 });
    expect(rd.entries).toEqual([]);
    expect(rd.mustSync).toBe(false);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
  });

  test('ready() twice without advance() throws; nothing new is offered meanwhile', () => {
    const b = node('b');
    b.step(app(1, 0, 0, [1]));
    const rd = b.ready();
    b.step(app(1, 1, 1, [1]));
    expect(b.hasReady()).toBe(false);
    expect(() => b.ready()).toThrow();
    expect(() => b.advance({ ...rd })).toThrow(); // only the outstanding Ready itself
    b.advance(rd);
    expect(b.hasReady()).toBe(true);
    expect(b.ready().entries.map((e) => e.index)).toEqual([2]);
  });

  test('committed entries are handed out only once persisted', () => {
    const b = node('b');
    b.step(app(1, 0, 0, [1, 1], 2));
    const first = b.ready();
    expect(b.core.log.committed).toBe(2);
    expect(first.hardState!.commit).toBe(2);
    expect(first.committedEntries).toEqual([]); // not on disk yet
    b.advance(first);
    const second = b.ready();
    expect(second.entries).toEqual([]);
    expect(second.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    b.advance(second);
    expect(b.core.log.applied).toBe(2);
    expect(b.hasReady()).toBe(false);
  });

  test('a single-member leader commits its first entry (the configuration, on an empty log) only after the Ready that carries it', () => {
    const n = new RaftNode(config('a', ['a']));
    n.campaign();
    const rd = n.ready();
    expect(rd.softState).toEqual({ leader: 'a', role: 'leader', term: 1 });
    expect(rd.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(rd.entries).toEqual([{ term: 1, index: 1, data: encodeMembership(n.core.membership) }]);
    expect(rd.committedEntries).toEqual([]);
    n.advance(rd);
    const next = n.ready();
    expect(next.hardState).toEqual({ term: 1, vote: 'a', commit: 1 });
    expect(next.committedEntries.map((e) => e.index)).toEqual([1]);
    expect(next.mustSync).toBe(false);
    expect(next.softState).toBeNull();
  });

  test('a leader may learn an index is committed from followers alone, but applies it only from its own disk', () => {
    const c = new Cluster(['a', 'b', 'c', 'd', 'e']);
    c.elect('a');
    const a = c.node('a');
    a.propose([bytes('x')]);
    const rd = a.ready();
    c.process('a', rd);
    c.hop();
    for (const id of ['b', 'c', 'd']) c.flush(id);
    for (const m of c.net.take()) if (m.to === 'a') a.step(m);
    expect(a.core.log.committed).toBe(2); // three followers out of five
    expect(a.core.log.nextCommitted()).toEqual([]); // but not on a's disk yet
    a.advance(rd);
    expect(a.ready().committedEntries.map((e) => e.index)).toEqual([2]);
  });

  test('entries replaced before their Ready is advanced are not taken as persisted', () => {
    const disk: Entry[] = [];
    const persist = (rd: Ready) => {
      const first = rd.entries[0]?.index ?? Infinity;
      disk.splice(0, disk.length, ...disk.filter((e) => e.index < first), ...rd.entries);
    };
    const b = node('b');
    b.step(app(1, 0, 0, [1, 1, 1]));
    const rd1 = b.ready();
    // Before rd1 is advanced, a new leader overwrites index 2 on.
    b.step(app(2, 1, 1, [2]));
    persist(rd1);
    b.advance(rd1);
    const rd2 = b.ready();
    expect(rd2.entries.map((e) => [e.index, e.term])).toContainEqual([2, 2]);
    persist(rd2);
    b.advance(rd2);
    expect(disk.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(b.core.log.stableIndex).toBe(2);
  });

  test('soft state is reported when it changes', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.softStates.get('a')).toEqual([
      { leader: '', role: 'pre-candidate', term: 0 },
      { leader: '', role: 'candidate', term: 1 },
      { leader: 'a', role: 'leader', term: 1 },
    ]);
    expect(c.softStates.get('b')).toEqual([
      { leader: '', role: 'follower', term: 1 },
      { leader: 'a', role: 'follower', term: 1 },
    ]);
  });
});
