import { SESSION_EXPIRED, SessionTable } from '../../lib/cluster/state/session-table';

describe('SessionTable', () => {
  test('a retried proposal gets the first result', () => {
    const t = new SessionTable();
    expect(t.lookup({ client: 'a', seq: 1 })).toBeUndefined();
    t.record({ client: 'a', seq: 1 }, 10, { version: 1 });
    expect(t.lookup({ client: 'a', seq: 1 })).toEqual({ version: 1 });
    expect(t.lookup({ client: 'b', seq: 1 })).toBeUndefined();
  });

  test('a retry older than the window is refused, one inside it still answers', () => {
    const t = new SessionTable();
    for (let seq = 1; seq <= 5000; seq++) t.record({ client: 'a', seq }, seq, seq);
    expect(t.lookup({ client: 'a', seq: 904 })).toBe(SESSION_EXPIRED);
    expect(t.lookup({ client: 'a', seq: 905 })).toBe(905);
    expect(t.lookup({ client: 'a', seq: 5001 })).toBeUndefined();
  });

  test('results applied out of order are kept while in the window and the table stays bounded', () => {
    const t = new SessionTable();
    let index = 0;
    // Pairs applied in swapped order, as concurrent proposals of one client can commit.
    for (let seq = 1; seq <= 20_000; seq += 2) {
      t.record({ client: 'a', seq: seq + 1 }, ++index, seq + 1);
      t.record({ client: 'a', seq }, ++index, seq);
    }
    for (let seq = 20_000 - 4095; seq <= 20_000; seq++) expect(t.lookup({ client: 'a', seq })).toBe(seq);
    expect(t.lookup({ client: 'a', seq: 100 })).toBe(SESSION_EXPIRED);
    const image = t.snapshot() as [string, number, number, [number, unknown][]][];
    expect(image[0]![3].length).toBeLessThanOrEqual(4098);
  });

  test('the same records give the same image, and a restored table answers alike', () => {
    const build = () => {
      const t = new SessionTable();
      for (let i = 1; i <= 3000; i++) t.record({ client: `c${i % 3}`, seq: Math.ceil(i / 3) }, i, i);
      return t;
    };
    const a = build();
    expect(build().snapshot()).toEqual(a.snapshot());
    const b = new SessionTable();
    b.restore(a.snapshot());
    expect(b.lookup({ client: 'c1', seq: 7 })).toEqual(a.lookup({ client: 'c1', seq: 7 }));
    expect(b.snapshot()).toEqual(a.snapshot());
  });
});
