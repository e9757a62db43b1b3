import { membershipOf } from '../../lib/raft/membership.js';
import { RaftLog } from '../../lib/raft/index.js';
import { bytes, entries } from './helpers.js';

/** A log with these terms from index 1 on (or after a snapshot base). */
function logOf(terms: number[], opts: { base?: { index: number; term: number }; commit?: number } = {}): RaftLog {
  const base = opts.base ?? { index: 0, term: 0 };
  const meta = opts.base ? { ...base, membership: membershipOf(['a']) } : null;
  return new RaftLog(meta, entries(terms, base.index + 1), opts.commit ?? 0);
}

const termsIn = (log: RaftLog) => {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i)!);
  return out;
};

describe('RaftLog', () => {
  test('construction checks continuity and the commit index', () => {
    expect(() => new RaftLog(null, entries([1], 2), 0)).toThrow();
    expect(() => new RaftLog(null, entries([1]), 2)).toThrow();
    const log = logOf([1, 2], { base: { index: 5, term: 1 } });
    expect([log.firstIndex(), log.lastIndex(), log.snapshotIndex(), log.committed, log.applied]).toEqual([6, 7, 5, 5, 5]);
  });

  test('term(): the base, the entries, undefined outside', () => {
    const log = logOf([2, 3], { base: { index: 5, term: 1 } });
    expect(log.term(5)).toBe(1);
    expect(log.term(6)).toBe(2);
    expect(log.term(7)).toBe(3);
    expect(log.term(4)).toBeUndefined();
    expect(log.term(8)).toBeUndefined();
    expect(log.lastTerm()).toBe(3);
    expect(logOf([]).lastTerm()).toBe(0);
  });

  test('isUpToDate (§5.4.1): later last term wins, then longer log', () => {
    const log = logOf([1, 2, 2]);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(9, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(9, 1)).toBe(false);
  });

  test('slice(): at least one entry, then as many as fit in maxBytes', () => {
    const log = new RaftLog(
      null,
      [5, 5, 20, 1].map((n, i) => ({ term: 1, index: i + 1, data: bytes('x'.repeat(n)) })),
      0,
    );
    const idx = (es: { index: number }[] | undefined) => es?.map((e) => e.index);
    expect(idx(log.slice(1, 5))).toEqual([1, 2, 3, 4]);
    expect(idx(log.slice(1, 5, 10))).toEqual([1, 2]);
    expect(idx(log.slice(1, 5, 9))).toEqual([1]);
    expect(idx(log.slice(3, 5, 1))).toEqual([3]); // too big, but alone
    expect(idx(log.slice(2, 3))).toEqual([2]);
    expect(idx(log.slice(4, 99))).toEqual([4]);
    expect(idx(log.slice(5, 9))).toEqual([]);
    log.appliedTo(2);
    log.commitTo(2);
    log.compact(2);
    expect(log.slice(2, 5)).toBeUndefined();
    expect(idx(log.slice(3, 5))).toEqual([3, 4]);
  });

  describe('maybeAppend', () => {
    test('undefined when prevIndex/prevTerm do not match', () => {
      const log = logOf([1, 1, 2]);
      expect(log.maybeAppend(3, 1, entries([3], 4))).toBeUndefined();
      expect(log.maybeAppend(4, 2, entries([3], 5))).toBeUndefined();
      expect(termsIn(log)).toEqual([1, 1, 2]);
    });

    test('appends past the end and returns the last new index', () => {
      const log = logOf([1, 1]);
      expect(log.maybeAppend(2, 1, entries([2, 2], 3))).toBe(4);
      expect(termsIn(log)).toEqual([1, 1, 2, 2]);
    });

    test('truncates from the first conflict and takes the rest', () => {
      const log = logOf([1, 1, 1, 1, 1]);
      expect(log.maybeAppend(1, 1, entries([1, 3, 3], 2))).toBe(4);
      expect(termsIn(log)).toEqual([1, 1, 3, 3]);
    });

    test('without a conflict nothing is truncated, even past the new entries', () => {
      const log = logOf([1, 1, 1, 1]);
      expect(log.maybeAppend(0, 0, entries([1, 1]))).toBe(2);
      expect(termsIn(log)).toEqual([1, 1, 1, 1]);
    });

    test('an empty append only checks the match', () => {
      const log = logOf([1, 2]);
      expect(log.maybeAppend(2, 2, [])).toBe(2);
      expect(log.maybeAppend(1, 2, [])).toBeUndefined();
    });

    test('refuses to truncate a committed entry', () => {
      const log = logOf([1, 1, 1], { commit: 2 });
      expect(() => log.maybeAppend(1, 1, entries([2], 2))).toThrow(/committed/);
      expect(termsIn(log)).toEqual([1, 1, 1]);
    });

    test('entries a snapshot already covers are skipped', () => {
      const log = logOf([2], { base: { index: 3, term: 2 } });
      expect(log.maybeAppend(3, 2, entries([2, 2], 4))).toBe(5);
      expect(termsIn(log)).toEqual([2, 2]);
      expect(log.firstIndex()).toBe(4);
    });

    test('truncation lowers stableIndex below the replaced entries', () => {
      const log = logOf([1, 1, 1]);
      expect(log.stableIndex).toBe(3);
      log.maybeAppend(1, 1, entries([2], 2));
      expect(log.stableIndex).toBe(1);
      expect(log.unstableEntries().map((e) => [e.index, e.term])).toEqual([[2, 2]]);
    });
  });

  test('findConflictByTerm: the largest index at or below `index` whose term is <= `term`', () => {
    const log = logOf([1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
    expect(log.findConflictByTerm(10, 6)).toBe(10);
    expect(log.findConflictByTerm(10, 5)).toBe(7);
    expect(log.findConflictByTerm(10, 4)).toBe(5);
    expect(log.findConflictByTerm(10, 3)).toBe(3);
    expect(log.findConflictByTerm(10, 0)).toBe(0);
    expect(log.findConflictByTerm(99, 6)).toBe(10);
    expect(log.findConflictByTerm(6, 9)).toBe(6);
  });

  test('findConflictByTerm stops at the snapshot base', () => {
    const log = logOf([4, 5], { base: { index: 5, term: 3 } });
    expect(log.findConflictByTerm(7, 4)).toBe(6);
    expect(log.findConflictByTerm(7, 3)).toBe(5);
    expect(log.findConflictByTerm(7, 1)).toBe(5);
  });

  test('commitTo never moves back and never past the end', () => {
    const log = logOf([1, 1, 1]);
    expect(log.commitTo(2)).toBe(true);
    expect(log.commitTo(1)).toBe(false);
    expect(log.committed).toBe(2);
    expect(() => log.commitTo(4)).toThrow();
  });

  test('stable, committed and applied: nextCommitted hands out committed entries that are on disk', () => {
    const log = logOf([1]);
    log.append(entries([1, 1], 2));
    expect(log.unstableEntries().map((e) => e.index)).toEqual([2, 3]);
    log.commitTo(3);
    expect(log.nextCommitted().map((e) => e.index)).toEqual([1]);
    log.stableTo(3, 1);
    expect(log.unstableEntries()).toEqual([]);
    expect(log.nextCommitted().map((e) => e.index)).toEqual([1, 2, 3]);
    log.appliedTo(2);
    expect(log.nextCommitted().map((e) => e.index)).toEqual([3]);
    expect(log.hasNextCommitted()).toBe(true);
    log.appliedTo(3);
    expect(log.hasNextCommitted()).toBe(false);
  });

  test('stableTo ignores entries replaced since (term mismatch)', () => {
    const log = logOf([]);
    log.append(entries([1, 1]));
    log.maybeAppend(1, 1, entries([2], 2));
    log.stableTo(2, 1);
    expect(log.stableIndex).toBe(0);
    log.stableTo(2, 2);
    expect(log.stableIndex).toBe(2);
  });

  test('compact drops applied entries and keeps the term of the new base', () => {
    const log = logOf([1, 2, 2, 3], { commit: 4 });
    expect(() => log.compact(2)).toThrow(/applied/);
    log.appliedTo(3);
    log.compact(3);
    expect([log.firstIndex(), log.snapshotIndex(), log.term(3), log.lastIndex()]).toEqual([4, 3, 2, 4]);
    expect(log.term(2)).toBeUndefined();
    log.compact(2); // older than the base: nothing
    expect(log.snapshotIndex()).toBe(3);
  });

  test('restore replaces the whole log; applied waits for the application', () => {
    const log = logOf([1, 1, 1], { commit: 1 });
    log.restore({ index: 10, term: 4, membership: membershipOf(['a']) });
    expect([log.firstIndex(), log.lastIndex(), log.lastTerm(), log.committed, log.stableIndex, log.applied]).toEqual([11, 10, 4, 10, 10, 0]);
    expect(log.nextCommitted()).toEqual([]);
    expect(log.hasNextCommitted()).toBe(false);
  });
});

/*
 * Regression (fixed in the core): below the snapshot base, findConflictByTerm used to return the base index, above
 * the index asked about; the leader then probed at the base before falling back to a snapshot, one round trip late.
 */
test('findConflictByTerm never returns an index above the one asked about', () => {
  const log = logOf([4, 5], { base: { index: 5, term: 3 } });
  expect(log.findConflictByTerm(2, 9)).toBeLessThanOrEqual(2);
});
