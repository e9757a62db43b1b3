import { MessageType, type Message } from '../../lib/raft/index.js';
import { bytes, Cluster, entries, msg, node, send, stateWith, termsOf } from './helpers.js';

/** A follower 'b' at term 2 holding a log with these terms (commit as given). */
function follower(terms: number[], commit = 0) {
  return node('b', ['a', 'b', 'c'], { state: stateWith(terms, { term: 2, commit }) });
}

/** An App from leader 'a' at term 2. */
function app(prevIndex: number, prevTerm: number, ents: { term: number; index: number }[], commit = 0): Message {
  return msg(MessageType.App, 'a', 'b', 2, {
    index: prevIndex,
    logTerm: prevTerm,
    commit,
    entries: ents.map((e) => ({ ...e, data: bytes(`${e.index}@${e.term}`) })),
  });
}

const appResp = (out: Message[]) => out.find((m) => m.type === MessageType.AppResp)!;

describe('AppendEntries receiver (Figure 2)', () => {
  test('rejects when the log has no entry at prevIndex with prevTerm', () => {
    const b = follower([1, 1]);
    // prevIndex past the end
    expect(appResp(send(b, app(5, 2, [{ index: 6, term: 2 }])))).toMatchObject({ reject: true, index: 5 });
    // prevIndex present, wrong term
    expect(appResp(send(b, app(2, 2, [{ index: 3, term: 2 }])))).toMatchObject({ reject: true, index: 2 });
    expect(termsOf(b.core)).toEqual([1, 1]);
  });

  test('accepts and appends when prevIndex/prevTerm match', () => {
    const b = follower([1, 1]);
    expect(appResp(send(b, app(2, 1, [{ index: 3, term: 2 }, { index: 4, term: 2 }])))).toMatchObject({ reject: false, index: 4 });
    expect(termsOf(b.core)).toEqual([1, 1, 2, 2]);
  });

  test('a conflicting entry and all that follow it are deleted and replaced', () => {
    const b = follower([1, 1, 1, 1]);
    send(b, app(1, 1, [{ index: 2, term: 2 }]));
    expect(termsOf(b.core)).toEqual([1, 2]);
  });

  test('entries already present are kept, including any that follow them', () => {
    const b = follower([1, 1, 1]);
    expect(appResp(send(b, app(0, 0, [{ index: 1, term: 1 }])))).toMatchObject({ reject: false, index: 1 });
    expect(termsOf(b.core)).toEqual([1, 1, 1]);
  });

  test('an entry at or below the commit index is never truncated', () => {
    const b = follower([1, 1, 1], 2);
    const out = send(b, app(1, 1, [{ index: 2, term: 2 }, { index: 3, term: 2 }]));
    // The App is older than what we know committed: we answer with our commit index and change nothing.
    expect(appResp(out)).toMatchObject({ reject: false, index: 2 });
    expect(termsOf(b.core)).toEqual([1, 1, 1]);
    expect(b.core.log.committed).toBe(2);
  });

  test('commit = min(leaderCommit, index of the last new entry)', () => {
    const b = follower([]);
    send(b, app(0, 0, [{ index: 1, term: 2 }, { index: 2, term: 2 }], 5));
    expect(b.core.log.committed).toBe(2);

    // A longer log with an unverified tail: only what this App proved to match may commit.
    const c = follower([1, 1, 1]);
    send(c, app(1, 1, [], 3));
    expect(c.core.log.committed).toBe(1);
    send(c, app(1, 1, [{ index: 2, term: 1 }], 3));
    expect(c.core.log.committed).toBe(2);
  });

  test('a heartbeat commits up to its commit, never past the end of the log', () => {
    const b = follower([1, 1]);
    send(b, msg(MessageType.Heartbeat, 'a', 'b', 2, { commit: 1 }));
    expect(b.core.log.committed).toBe(1);
    send(b, msg(MessageType.Heartbeat, 'a', 'b', 2, { commit: 9 }));
    expect(b.core.log.committed).toBe(2);
  });
});

describe('leader side of replication', () => {
  test('a new leader appends a no-op of its own term', () => {
    const c = new Cluster(['a', 'b', 'c'], {
      states: { a: stateWith([1, 1], { term: 1, commit: 1 }), b: stateWith([1, 1], { term: 1 }), c: stateWith([1], { term: 1 }) },
    });
    c.elect('a');
    const a = c.raft('a');
    expect(a.term).toBe(2);
    const last = a.log.lastIndex();
    expect(last).toBe(3);
    expect(a.log.term(last)).toBe(2);
    for (const id of c.ids) {
      const applied = c.applied.get(id)!;
      expect(applied.map((e) => e.index)).toEqual([1, 2, 3]);
      expect(applied[2]!.data.length).toBe(0);
    }
  });

  test('heartbeats carry min(match, commit), so a lagging follower never commits what it may not hold', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const rule = c.net.drop((m) => m.type === MessageType.App && m.to === 'c');
    c.propose('a', 'x', 'y', 'z');
    c.settle();
    const a = c.raft('a');
    expect(a.log.committed).toBe(4);
    const cMatch = a.prs.get('c')!.match;
    expect(cMatch).toBe(1);
    c.net.allow(rule);
    c.net.drop((m) => m.type !== MessageType.Heartbeat); // look at the heartbeats alone
    c.node('a').tick();
    c.flush('a');
    const hbs = c.net.pending().filter((m) => m.type === MessageType.Heartbeat);
    expect(hbs.find((m) => m.to === 'b')!.commit).toBe(4);
    expect(hbs.find((m) => m.to === 'c')!.commit).toBe(cMatch);
  });

  test('a follower that missed entries catches up once the link heals', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.net.isolate('c');
    for (let i = 0; i < 20; i++) c.propose('a', `v${i}`);
    c.settle();
    c.net.heal();
    c.tick(1);
    expect(termsOf(c.raft('c'))).toEqual(termsOf(c.raft('a')));
    expect(c.raft('c').log.committed).toBe(c.raft('a').log.committed);
  });
});

describe('fast backtracking', () => {
  /** Leader 'a' and a voter 'v' with the leader's log, follower 'f' with its own; all at `term`. Elects 'a'. */
  function scenario(leader: number[], follower: number[], term: number) {
    const c = new Cluster(['a', 'v', 'f'], {
      states: {
        a: stateWith(leader, { term }),
        v: stateWith(leader, { term }),
        f: stateWith(follower, { term }),
      },
    });
    c.elect('a');
    return c;
  }
  /** Apps that carried entries to 'f' (the commit notice that follows carries none). */
  const appsWithEntries = (c: Cluster) => c.net.sent({ type: MessageType.App, to: 'f' }).filter((m) => m.entries.length > 0);
  const rejections = (c: Cluster) => c.net.sent({ type: MessageType.AppResp, from: 'f' }).filter((m) => m.reject);

  test('a long divergent tail from an old term is replaced in a couple of round trips', () => {
    const leader = [1, ...Array<number>(50).fill(3)];
    const follower = [1, ...Array<number>(100).fill(2)];
    const c = scenario(leader, follower, 3);
    expect(appsWithEntries(c)).toHaveLength(2); // not 50
    expect(termsOf(c.raft('f'))).toEqual([...leader, 4]);
    // The rejection told the leader the follower's term at its hint, which let it skip the whole term-2 run.
    expect(rejections(c)).toEqual([expect.objectContaining({ index: 51, rejectHint: 51, logTerm: 2 })]);
    expect(appsWithEntries(c)[1]).toMatchObject({ index: 1, logTerm: 1 });
  });

  test('a follower that is merely behind is found in one extra round trip', () => {
    const leader = [1, ...Array<number>(100).fill(2)];
    const c = scenario(leader, [1], 2);
    expect(appsWithEntries(c)).toHaveLength(2);
    expect(rejections(c)).toEqual([expect.objectContaining({ rejectHint: 1, logTerm: 1 })]);
    expect(termsOf(c.raft('f'))).toEqual([...leader, 3]);
  });

  // Figure 7 of the Raft paper: the leader of term 8 and possible followers (a)-(f).
  const LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  test.each([
    ['a', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['b', [1, 1, 1, 4]],
    ['c', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['d', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['e', [1, 1, 1, 4, 4, 4, 4]],
    ['f', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
  ])('Figure 7 (%s): the follower ends with exactly the leader log', (_name, follower) => {
    const c = scenario(LEADER, follower, 7);
    expect(c.raft('a').term).toBe(8);
    expect(termsOf(c.raft('f'))).toEqual([...LEADER, 8]);
    expect(termsOf(c.raft('v'))).toEqual([...LEADER, 8]);
    expect(c.raft('f').log.committed).toBe(11);
    // One rejection at most: each follower's divergence is found in a single extra round trip.
    expect(rejections(c).length).toBeLessThanOrEqual(1);
    expect(appsWithEntries(c).length).toBe(rejections(c).length + 1);
  });
});

describe('commit rule (§5.4.2, Figure 8)', () => {
  test('an entry of an earlier term is not committed by counting replicas, only with one of the current term', () => {
    // Figure 8 (c): S1 leads term 4 with [1, 2, 4]; S2 and S3 hold [1, 2]; S4 holds [1]; S5 holds [1, 3].
    const c = new Cluster(['s1', 's2', 's3', 's4', 's5'], {
      states: {
        s1: stateWith([1, 2], { term: 3, commit: 1 }),
        s2: stateWith([1, 2], { term: 3, commit: 1 }),
        s3: stateWith([1, 2], { term: 3, commit: 1 }),
        s4: stateWith([1], { term: 3, commit: 1 }),
        s5: stateWith([1, 3], { term: 3, commit: 1 }),
      },
    });
    c.net.drop((m) => m.type === MessageType.App); // the leader's entries go nowhere until the test says so
    c.elect('s1');
    const s1 = c.raft('s1');
    expect(s1.term).toBe(4);
    expect(termsOf(s1)).toEqual([1, 2, 4]);

    const ack = (from: string, index: number) => msg(MessageType.AppResp, from, 's1', 4, { index });
    c.deliver([ack('s2', 2), ack('s3', 2)]);
    // Index 2 is on S1, S2 and S3, a majority; yet committing it would be unsafe: S5 (last term 3) could still be
    // elected by S2, S3 and S4 and overwrite it.
    expect(s1.prs.get('s2')!.match).toBe(2);
    expect(s1.log.committed).toBe(1);
    c.deliver([ack('s4', 2)]);
    expect(s1.log.committed).toBe(1);
    expect(c.raft('s2').log.isUpToDate(2, 3)).toBe(true); // S5's vote request (index 2, term 3) would win S2

    // Figure 8 (e): once the term-4 entry is on a majority, it commits, and index 2 with it.
    c.deliver([ack('s2', 3)]);
    expect(s1.log.committed).toBe(1);
    c.deliver([ack('s3', 3)]);
    expect(s1.log.committed).toBe(3);
  });

  test('the leader counts its own log only once the Ready carrying it is persisted', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const a = c.node('a');
    a.propose([bytes('x')]);
    const rd = a.ready();
    expect(rd.entries).toHaveLength(1);
    c.process('a', rd); // hands the Apps to the network; the leader is not advanced yet
    c.hop(); // 'b' and 'c' append
    c.flush('b');
    c.flush('c');
    const ackFromB = c.net.take().find((m) => m.type === MessageType.AppResp && m.from === 'b')!;
    a.step(ackFromB);
    expect(a.core.prs.get('b')!.match).toBe(2);
    expect(a.core.log.committed).toBe(1); // {b} alone is no majority until a's own copy is on disk
    a.advance(rd);
    expect(a.core.log.committed).toBe(2);
  });
});

describe('flow control', () => {
  test('in replicate state, several Apps go out without waiting for answers', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.raft('a').prs.get('b')!.state).toBe('replicate');
    const before = c.net.trace.length;
    for (const v of ['x', 'y', 'z']) {
      c.propose('a', v);
      c.flush('a'); // send, deliver nothing
    }
    const apps = c.net.trace.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b');
    expect(apps.map((m) => m.entries.map((e) => e.index))).toEqual([[2], [3], [4]]);
  });

  test('a full inflight window pauses sending; acknowledgements resume it', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { maxInflightMsgs: 2 } });
    c.elect('a');
    const before = c.net.trace.length;
    for (const v of ['1', '2', '3', '4', '5']) {
      c.propose('a', v);
      c.flush('a');
    }
    const toB = () => c.net.trace.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b');
    expect(toB()).toHaveLength(2);
    expect(c.raft('a').prs.get('b')!.inflights.full()).toBe(true);
    c.settle();
    expect(toB().flatMap((m) => m.entries.map((e) => e.index))).toEqual([2, 3, 4, 5, 6]);
    expect(c.raft('b').log.lastIndex()).toBe(6);
    expect(c.raft('a').prs.get('b')!.inflights.count).toBe(0);
  });

  test('in probe state only one App is out at a time', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const rule = c.net.drop((m) => m.type === MessageType.AppResp && m.from === 'b');
    c.elect('a');
    expect(c.raft('a').prs.get('b')!.state).toBe('probe');
    c.propose('a', 'x');
    c.propose('a', 'y');
    c.settle();
    expect(c.net.sent({ type: MessageType.App, to: 'b' })).toHaveLength(1);
    expect(c.net.sent({ type: MessageType.App, to: 'c' }).length).toBeGreaterThan(1);
    // A heartbeat answer lets the probe go on.
    c.net.allow(rule);
    c.tick(1);
    expect(c.raft('a').prs.get('b')!.state).toBe('replicate');
    expect(c.raft('b').log.lastIndex()).toBe(3);
  });

  test('entries are batched by maxSizePerMsg, with at least one entry per message', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { maxSizePerMsg: 10 } });
    c.elect('a');
    const before = c.net.trace.length;
    c.node('a').propose(['aaaa', 'bbbb', 'cccc', 'this one is too big', 'dd'].map(bytes));
    c.settle();
    const apps = c.net.trace.slice(before).filter((m) => m.type === MessageType.App && m.to === 'b' && m.entries.length > 0);
    expect(apps.map((m) => m.entries.map((e) => e.data.length))).toEqual([[4, 4], [4], [19], [2]]);
    expect(c.raft('b').log.lastIndex()).toBe(6);
  });

  test('a heartbeat answer frees a full window whose App was lost (no stall)', () => {
    const c = new Cluster(['a', 'b', 'c'], { config: { maxInflightMsgs: 1 } });
    c.elect('a');
    const lost = c.net.drop((m) => m.type === MessageType.App && m.to === 'b');
    c.propose('a', 'x');
    c.propose('a', 'y');
    c.settle();
    expect(c.raft('a').prs.get('b')!.inflights.full()).toBe(true);
    expect(c.raft('b').log.lastIndex()).toBe(1);
    c.net.allow(lost);
    c.settle();
    expect(c.raft('b').log.lastIndex()).toBe(1); // nothing happens by itself
    c.tick(1);
    expect(c.raft('b').log.lastIndex()).toBe(3);
    expect(termsOf(c.raft('b'))).toEqual(termsOf(c.raft('a')));
  });
});

test('entries() builds consecutive indices', () => {
  expect(entries([1, 2], 5).map((e) => [e.index, e.term])).toEqual([
    [5, 1],
    [6, 2],
  ]);
});
