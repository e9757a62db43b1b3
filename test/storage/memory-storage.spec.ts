import fc from 'fast-check';
import { EMPTY_HARD_STATE } from '../../lib/raft/types.js';
import { InvalidWriteError } from '../../lib/storage/errors.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import type { RaftStorage, RecoveredState } from '../../lib/storage/raft-storage.js';
import { SimDisk } from '../support/sim-disk.js';
import { batch, entries, hs, plain, snapshot } from './helpers.js';

function view(state: RecoveredState): unknown {
  return {
    hardState: state.hardState,
    snapshot: state.snapshot === null ? null : { meta: state.snapshot.meta, data: Buffer.from(state.snapshot.data).toString() },
    entries: plain(state.entries),
  };
}

describe('MemoryStorage', () => {
  it('starts empty and returns what was persisted at the next open', async () => {
    const m = new MemoryStorage();
    expect(await m.open()).toEqual({ hardState: EMPTY_HARD_STATE, snapshot: null, entries: [] });
    await m.persist(batch({ entries: entries(1, 4, 1), hardState: hs(1, 'a', 1) }));
    await m.persist(batch({ entries: entries(3, 3, 2) }));
    await m.close();
    const state = await m.open();
    expect(plain(state.entries)).toEqual(plain([...entries(1, 2, 1), ...entries(3, 3, 2)]));
    expect(state.hardState).toEqual(hs(1, 'a', 1));
  });

  it('applies snapshots like FileStorage: keep entries after a matching index, discard a mismatching log', async () => {
    const m = new MemoryStorage();
    await m.open();
    await m.persist(batch({ entries: entries(1, 10, 1) }));
    await m.saveSnapshot(snapshot(4, 1));
    await m.persist(batch({ snapshot: snapshot(12, 2), entries: entries(13, 13, 2) }));
    await m.close();
    const state = await m.open();
    expect(state.snapshot?.meta.index).toBe(12);
    expect(plain(state.entries)).toEqual(plain(entries(13, 13, 2)));
  });

  it('refuses gaps, stale snapshots and calls while closed', async () => {
    const m = new MemoryStorage();
    await expect(m.persist(batch({}))).rejects.toThrow(InvalidWriteError);
    await m.open();
    await m.persist(batch({ entries: entries(1, 3, 1) }));
    await expect(m.persist(batch({ entries: entries(5, 5, 1) }))).rejects.toThrow(/gap/);
    await m.saveSnapshot(snapshot(2, 1));
    await expect(m.saveSnapshot(snapshot(2, 1))).rejects.toThrow(/not newer/);
  });

  it('agrees with FileStorage on every reopen over random writes, conflicts and snapshots', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), back: fc.nat(4), count: fc.nat(4), bump: fc.boolean(), commit: fc.nat(3) }),
      fc.record({ kind: fc.constant('local' as const), at: fc.nat(10) }),
      fc.record({ kind: fc.constant('install' as const), ahead: fc.integer({ min: -6, max: 4 }), match: fc.boolean(), count: fc.nat(3) }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const disk = new SimDisk();
        const mem = new MemoryStorage();
        let file: RaftStorage = new FileStorage(disk, { segmentBytes: 300 });
        let state = await mem.open();
        expect(view(await file.open())).toEqual(view(state));
        let term = 1;
        const both = async (run: (s: RaftStorage) => Promise<void>): Promise<void> => {
          const [a, b] = await Promise.allSettled([run(mem), run(file)]);
          expect(a.status).toBe(b.status);
        };
        // The model's view of the log, to aim writes at interesting places.
        let snapIndex = 0;
        let last = 0;
        let commit = 0;
        const termAt = (i: number): number => (state.entries.find((e) => e.index === i)?.term ?? (i === snapIndex ? (state.snapshot?.meta.term ?? 0) : 0));
        for (const o of ops) {
          if (o.kind === 'append') {
            if (o.bump) term++;
            const start = Math.max(commit + 1, snapIndex + 1, last + 1 - o.back);
            const list = entries(start, start + o.count - 1, term, 3);
            const newLast = o.count > 0 ? start + o.count - 1 : last;
            commit = Math.min(newLast, commit + o.commit);
            await both((s) => s.persist(batch({ entries: list, hardState: hs(term, 'n1', commit) })));
          } else if (o.kind === 'local') {
            const at = Math.min(commit, snapIndex + 1 + o.at);
            if (at > snapIndex) await both((s) => s.saveSnapshot(snapshot(at, termAt(at))));
          } else if (o.kind === 'install') {
            const at = Math.max(snapIndex + 1, last + o.ahead);
            const t = o.match && at <= last ? termAt(at) : term + 1;
            term = Math.max(term, t);
            commit = Math.max(commit, at);
            const list = entries(at + 1, at + o.count, t, 2);
            await both((s) => s.persist(batch({ snapshot: snapshot(at, t), entries: list, hardState: hs(term, 'n2', commit) })));
          } else {
            await mem.close();
            await file.close();
            file = new FileStorage(disk, { segmentBytes: 300 });
            state = await mem.open();
            expect(view(await file.open())).toEqual(view(state));
          }
          await mem.close();
          state = await mem.open();
          snapIndex = state.snapshot?.meta.index ?? 0;
          last = state.entries.at(-1)?.index ?? snapIndex;
        }
        await mem.close();
        await file.close();
        file = new FileStorage(disk, { segmentBytes: 300 });
        expect(view(await file.open())).toEqual(view(await mem.open()));
        await file.close();
      }),
      { numRuns: 150 },
    );
  });
});
