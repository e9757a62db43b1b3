import { Inflights } from '../../lib/raft/inflights.js';
import { Progress } from '../../lib/raft/progress.js';
import { majorityValue, quorumSize, voteOutcome } from '../../lib/raft/quorum.js';

describe('Inflights', () => {
  test('fills up to its capacity, frees in order, wraps around', () => {
    const f = new Inflights(3);
    f.add(2);
    f.add(4);
    f.add(6);
    expect(f.full()).toBe(true);
    expect(() => f.add(8)).toThrow();
    f.freeLE(3);
    expect(f.count).toBe(2);
    f.add(8); // wraps
    f.freeLE(5);
    expect(f.count).toBe(2);
    f.freeFirst();
    expect(f.count).toBe(1);
    f.freeLE(100);
    expect(f.count).toBe(0);
    f.freeFirst(); // empty: nothing
    expect(f.count).toBe(0);
  });

  test('freeLE below the oldest frees nothing; reset empties', () => {
    const f = new Inflights(2);
    f.add(5);
    f.freeLE(4);
    expect(f.count).toBe(1);
    f.reset();
    expect(f.count).toBe(0);
    expect(f.full()).toBe(false);
  });
});

describe('Progress', () => {
  test('probe: one App at a time, released by an acknowledgement', () => {
    const p = new Progress(5, 4);
    expect(p.state).toBe('probe');
    expect(p.paused()).toBe(false);
    p.sentEntries(7);
    expect(p.paused()).toBe(true);
    expect(p.next).toBe(5); // probing does not move next optimistically
    expect(p.maybeUpdate(7)).toBe(true);
    expect([p.match, p.next, p.paused()]).toEqual([7, 8, false]);
  });

  test('replicate: next moves optimistically; the window bounds the pipeline', () => {
    const p = new Progress(5, 2);
    p.maybeUpdate(4);
    p.becomeReplicate();
    expect(p.next).toBe(5);
    p.sentEntries(6);
    expect([p.next, p.paused()]).toEqual([7, false]);
    p.sentEntries(9);
    expect([p.next, p.paused()]).toEqual([10, true]);
    p.maybeUpdate(6);
    p.inflights.freeLE(6);
    expect(p.paused()).toBe(false);
  });

  test('maybeUpdate ignores stale acknowledgements', () => {
    const p = new Progress(5, 2);
    expect(p.maybeUpdate(4)).toBe(true);
    expect(p.maybeUpdate(3)).toBe(false);
    expect(p.maybeUpdate(4)).toBe(false);
    expect(p.match).toBe(4);
  });

  test('maybeDecrTo in replicate: rejections at or below match are stale, others fall back to match + 1', () => {
    const p = new Progress(1, 8);
    p.maybeUpdate(5);
    p.becomeReplicate();
    p.sentEntries(9);
    expect(p.maybeDecrTo(5, 0)).toBe(false);
    expect(p.next).toBe(10);
    expect(p.maybeDecrTo(9, 2)).toBe(true);
    expect(p.next).toBe(6);
  });

  test('maybeDecrTo in probe: only an answer to the outstanding probe counts; next = max(min(rejected, hint + 1), match + 1)', () => {
    const p = new Progress(11, 8);
    p.maybeUpdate(2);
    p.next = 11;
    p.sentEntries(12);
    expect(p.maybeDecrTo(7, 3)).toBe(false); // not the probe we sent (prevIndex 10)
    expect(p.maybeDecrTo(10, 5)).toBe(true);
    expect([p.next, p.probeSent]).toEqual([6, false]);
    expect(p.maybeDecrTo(5, 0)).toBe(true);
    expect(p.next).toBe(3); // never below match + 1
    expect(p.maybeDecrTo(2, 99)).toBe(true);
    expect(p.next).toBe(3);
  });

  test('snapshot: paused until it leaves the state; probing resumes after the snapshot', () => {
    const p = new Progress(3, 8);
    p.maybeUpdate(2);
    p.becomeSnapshot(20, 7);
    expect([p.state, p.paused(), p.pendingSnapshot, p.snapshotSentAt]).toEqual(['snapshot', true, 20, 7]);
    p.becomeProbe();
    expect([p.state, p.next, p.pendingSnapshot]).toEqual(['probe', 21, 0]);
    p.maybeUpdate(25);
    p.becomeSnapshot(20, 9);
    p.becomeProbe();
    expect(p.next).toBe(26);
  });

  test('leaving replicate empties the window', () => {
    const p = new Progress(1, 1);
    p.becomeReplicate();
    p.sentEntries(3);
    expect(p.paused()).toBe(true);
    p.becomeProbe();
    expect([p.inflights.count, p.next, p.paused()]).toEqual([0, 1, false]);
  });
});

describe('quorum', () => {
  test('quorumSize', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(quorumSize)).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });

  test('majorityValue: the highest value a majority has reached', () => {
    expect(majorityValue([])).toBe(0);
    expect(majorityValue([7])).toBe(7);
    expect(majorityValue([5, 1, 3])).toBe(3);
    expect(majorityValue([5, 5, 1, 1])).toBe(1);
    expect(majorityValue([9, 8, 2, 7, 1])).toBe(7);
  });

  test('voteOutcome', () => {
    expect(voteOutcome(3, 2, 0)).toBe('won');
    expect(voteOutcome(3, 1, 1)).toBe('pending');
    expect(voteOutcome(3, 1, 2)).toBe('lost');
    expect(voteOutcome(4, 2, 2)).toBe('lost');
    expect(voteOutcome(4, 2, 1)).toBe('pending');
    expect(voteOutcome(1, 1, 0)).toBe('won');
  });
});
