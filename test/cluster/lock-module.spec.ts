import { LockModule, type AcquireResult, type LockCommand } from '../../lib/cluster/state/lock-module';

/** Applies commands as consecutive log entries, each with the given entry time. */
function log(m: LockModule) {
  let index = 0;
  return (cmd: LockCommand, time: number) => m.apply(cmd, { index: ++index, term: 1, time });
}

const acquire = (owner: string, requestId: string, extra: Partial<Extract<LockCommand, { op: 'acquire' }>> = {}): LockCommand => ({
  op: 'acquire',
  name: 'x',
  owner,
  requestId,
  leaseMs: 1000,
  waitMs: 5000,
  ...extra,
});

describe('LockModule', () => {
  test('the fencing token is the index of the granting entry', () => {
    const m = new LockModule();
    const apply = log(m);
    apply({ op: 'tick' }, 0); // index 1
    const r = apply(acquire('a', 'a1'), 10) as AcquireResult; // index 2
    expect(r).toEqual({ granted: true, token: 2, index: 2, expiresAt: 1010 });
    expect(m.holder('x')).toMatchObject({ owner: 'a', token: 2, grantedAt: 10 });
  });

  test('waiters are granted in FIFO order, each at the entry that frees the lock', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1'), 0); // 1: a holds
    expect(apply(acquire('b', 'b1'), 1)).toEqual({ granted: false, queued: true, position: 0 }); // 2
    expect(apply(acquire('c', 'c1'), 2)).toEqual({ granted: false, queued: true, position: 1 }); // 3
    expect(apply(acquire('b', 'b1'), 3)).toEqual({ granted: false, queued: true, position: 0 }); // 4: asking again keeps the place
    expect(apply({ op: 'release', name: 'x', owner: 'a', token: 1 }, 4)).toEqual({ ok: true }); // 5
    expect(m.holder('x')).toMatchObject({ owner: 'b', requestId: 'b1', token: 5 });
    expect(m.waiters('x').map((w) => w.requestId)).toEqual(['c1']);
    // A retry by the queued b now reports its grant; c's retry still waits.
    expect(apply(acquire('b', 'b1', { retry: true }), 5)).toMatchObject({ granted: true, token: 5, index: 6 });
    expect(apply(acquire('c', 'c1', { retry: true }), 6)).toEqual({ granted: false, queued: true, position: 0 });
    apply({ op: 'release', name: 'x', owner: 'b', token: 5 }, 7); // 8
    expect(m.holder('x')).toMatchObject({ owner: 'c', token: 8 });
    apply({ op: 'release', name: 'x', owner: 'c', token: 8 }, 8);
    expect(m.holder('x')).toBeUndefined();
    expect(m.names()).toEqual([]);
  });

  test('try-once does not queue; a late retry never re-grants a released request', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1'), 0);
    expect(apply(acquire('b', 'b1', { waitMs: 0 }), 1)).toEqual({ granted: false, queued: false, position: -1 });
    expect(m.waiters('x')).toEqual([]);
    apply({ op: 'release', name: 'x', owner: 'a', token: 1 }, 2);
    expect(apply(acquire('a', 'a1', { retry: true }), 3)).toEqual({ granted: false, queued: false, position: -1 });
    expect(m.holder('x')).toBeUndefined();
  });

  test('a lease ends by entry time: renewals extend it, an expired holder cannot renew, the next waiter gets it', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1'), 1000); // 1: lease to 2000
    apply(acquire('b', 'b1'), 1100); // 2: queued
    expect(apply({ op: 'renew', name: 'x', owner: 'a', token: 1 }, 1900)).toEqual({ ok: true, expiresAt: 2900 }); // 3
    apply(acquire('b', 'b1', { retry: true }), 2500); // 4: still a's
    expect(m.holder('x')?.owner).toBe('a');
    // Entry time 2900: a's lease has run out; b's retry expires it and gets the lock at this entry.
    expect(apply(acquire('b', 'b1', { retry: true }), 2900)).toMatchObject({ granted: true, token: 5, index: 5 });
    expect(apply({ op: 'renew', name: 'x', owner: 'a', token: 1 }, 2901)).toEqual({ ok: false });
    expect(apply({ op: 'release', name: 'x', owner: 'a', token: 1 }, 2902)).toEqual({ ok: false });
    expect(m.holder('x')?.owner).toBe('b');
  });

  test('entry time never goes backwards (a new leader with a slower clock cannot extend a lease)', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1'), 5000); // lease to 6000
    apply({ op: 'tick' }, 6000); // expires
    expect(m.holder('x')).toBeUndefined();
    apply(acquire('b', 'b1'), 100); // a leader whose clock reads 100: time stays 6000
    expect(m.holder('x')).toMatchObject({ grantedAt: 6000 });
  });

  test('a tick expires holders of every lock and drops waiters past their wait', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1', { name: 'x' }), 0);
    apply(acquire('a', 'a2', { name: 'y' }), 0);
    apply(acquire('b', 'b1', { name: 'x', waitMs: 500 }), 0);
    apply(acquire('c', 'c1', { name: 'x', waitMs: 5000 }), 0);
    apply({ op: 'tick' }, 1000);
    expect(m.holder('x')).toMatchObject({ owner: 'c', token: 5 }); // b gave up at 500
    expect(m.holder('y')).toBeUndefined();
  });

  test('cancel leaves the queue, or gives back a grant that came too late', () => {
    const m = new LockModule();
    const apply = log(m);
    apply(acquire('a', 'a1'), 0);
    apply(acquire('b', 'b1'), 0);
    apply(acquire('c', 'c1'), 0);
    expect(apply({ op: 'cancel', name: 'x', owner: 'b', requestId: 'b1' }, 1)).toEqual({ ok: true });
    apply({ op: 'release', name: 'x', owner: 'a', token: 1 }, 2); // 5: c gets it
    expect(apply({ op: 'cancel', name: 'x', owner: 'c', requestId: 'c1' }, 3)).toEqual({ ok: true });
    expect(m.holder('x')).toBeUndefined();
  });

  test('snapshot and restore reproduce the table, and the copy behaves identically', () => {
    const a = new LockModule();
    const apply = log(a);
    apply(acquire('a', 'a1', { name: 'q' }), 10);
    apply(acquire('b', 'b1', { name: 'q' }), 20);
    apply(acquire('a', 'a2', { name: 'p' }), 30);
    const b = new LockModule();
    b.restore(a.snapshot());
    expect(b.snapshot()).toEqual(a.snapshot());
    const cmd: LockCommand = { op: 'release', name: 'q', owner: 'a', token: 1 };
    expect(b.apply(cmd, { index: 9, term: 2, time: 40 })).toEqual(a.apply(cmd, { index: 9, term: 2, time: 40 }));
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(b.holder('q')).toMatchObject({ owner: 'b', token: 9 });
    // Deterministic image: names sorted, whatever the insertion order.
    expect((a.snapshot() as { locks: [string][] }).locks.map((l) => l[0])).toEqual(['p', 'q']);
  });
});
