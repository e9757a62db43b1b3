/**
 * EtcdLocks against a real three-member etcd: FIFO hand-over with growing fencing tokens, takeover after a crashed
 * holder's lease runs out, timeouts and aborts that leave no key behind, a holder cut off from etcd giving up
 * (signal) before anyone else can get the lock, a holder whose key etcd drops early (etcd-io/etcd#15247) outlived by
 * the waiter's takeover wait, and no overlap while etcd's leader member is paused. All times are read on this
 * process's performance.now().
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { systemClock, systemTimers } from '../../lib/io/clock';
import type { DistributedLock } from '../../lib/cluster/distributed-lock';
import { EtcdLocks } from '../../lib/cluster/etcd/etcd-locks';
import type { EtcdKeys } from '../../lib/cluster/etcd/keys';
import { LockLostException, LockTimeoutException } from '../../lib/cluster/lock-errors';
import { etcdHosts, freshKeys, noRetryClient, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { freezableRelay } from '../support/freezable-relay';

jest.setTimeout(120_000);

const REQUEST_TIMEOUT = 3_000;
let etcd: EtcdCluster;
let observer: Etcd3;
const clients: Etcd3[] = [];
const held: DistributedLock[] = [];

function newClient(hosts: string[] = etcdHosts(etcd)): Etcd3 {
  const c = noRetryClient(hosts);
  clients.push(c);
  return c;
}

/** A node's locks: its own etcd client unless given one. */
function node(keys: EtcdKeys, owner: string, client = newClient(), requestTimeoutMs = REQUEST_TIMEOUT): { locks: EtcdLocks; client: Etcd3 } {
  const locks = new EtcdLocks({ client, keys, clock: systemClock, timers: systemTimers, owner, requestTimeoutMs });
  return { locks, client };
}


/** Queue keys of lock `name` in etcd now. */
async function queueLength(keys: EtcdKeys, name: string): Promise<number> {
  return observer.getAll().prefix(keys.lockPrefix(name)).count();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The oldest queue key of lock `name` (its holder), with its lease id and parsed value. */
async function headOf(keys: EtcdKeys, name: string): Promise<{ key: string; lease: string; value: Record<string, unknown> }> {
  const kv = (await observer.getAll().prefix(keys.lockPrefix(name)).sort('Create', 'Ascend').limit(1).exec()).kvs[0]!;
  return { key: kv.key.toString(), lease: kv.lease, value: JSON.parse(kv.value.toString()) as Record<string, unknown> };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function keep(lock: DistributedLock): DistributedLock {
  held.push(lock);
  return lock;
}

beforeAll(async () => {
  etcd = await startEtcd(3);
  observer = newClient();
}, 90_000);

afterEach(async () => {
  await Promise.all(held.splice(0).map((l) => l.release()));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await etcd?.destroy();
});

test('argument checks and messages are the embedded ones', async () => {
  const { locks } = node(freshKeys(), 'a');
  await expect(locks.acquire('')).rejects.toThrow(new TypeError('lock names are non-empty strings'));
  await expect(locks.acquire('x', { ttl: 0 })).rejects.toThrow(new TypeError('lock ttl must be a positive number of ms, got 0'));
  await expect(locks.acquire('x', { ttl: Number.NaN })).rejects.toThrow(new TypeError('lock ttl must be a positive number of ms, got NaN'));
  await expect(locks.acquire('x', { wait: -1 })).rejects.toThrow(new TypeError('lock wait must be a number of ms >= 0, got -1'));
});

test('three contenders get the lock in FIFO order, tokens strictly increase, and a release hands over at once', async () => {
  const keys = freshKeys();
  const [a, b, c] = ['a', 'b', 'c'].map((o) => node(keys, o).locks);
  const ttl = 5_000; // far longer than any hand-over below: only a release can explain one
  const la = keep(await a!.acquire('job', { ttl }));
  expect(la.held).toBe(true);
  expect(la.token).toBeGreaterThan(0);

  const order: string[] = [];
  const gotAt = new Map<string, number>();
  const pb = b!.acquire('job', { ttl, wait: 30_000 }).then((l) => (order.push('b'), gotAt.set('b', performance.now()), keep(l)));
  await until('b queued', async () => (await queueLength(keys, 'job')) === 2);
  const pc = c!.acquire('job', { ttl, wait: 30_000 }).then((l) => (order.push('c'), gotAt.set('c', performance.now()), keep(l)));
  await until('c queued', async () => (await queueLength(keys, 'job')) === 3);

  await new Promise((r) => setTimeout(r, 300));
  expect(order).toEqual([]); // nobody jumps a held lock

  const releasedAt = performance.now();
  await la.release();
  expect(la.held).toBe(false);
  expect(la.signal.aborted).toBe(true);
  const lb = await pb;
  expect(gotAt.get('b')! - releasedAt).toBeLessThan(1_500);
  expect(order).toEqual(['b']);

  const releasedB = performance.now();
  await lb.release();
  const lc = await pc;
  expect(gotAt.get('c')! - releasedB).toBeLessThan(1_500);
  expect(order).toEqual(['b', 'c']);
  expect(la.token).toBeLessThan(lb.token);
  expect(lb.token).toBeLessThan(lc.token);
  await lc.release();
  expect(await queueLength(keys, 'job')).toBe(0);

  // A later acquire gets a larger token still.
  const again = keep(await a!.acquire('job', { ttl }));
  expect(again.token).toBeGreaterThan(lc.token);
});

test('a holder that crashes (its etcd client closed, no renewals) loses the lock to the waiter once its etcd lease ends', async () => {
  const keys = freshKeys();
  const ttl = 1_000;
  const crashed = node(keys, 'crashed');
  const waiter = node(keys, 'waiter').locks;
  const t0 = performance.now();
  const la = await crashed.locks.acquire('c', { ttl });
  crashed.client.close(); // no keepalive, no revoke: only etcd's lease expiry frees the key
  const lb = keep(await waiter.acquire('c', { ttl, wait: 30_000 }));
  const gotAt = performance.now();
  // etcd's lease is at least ⌈ttl/1000⌉ s from its grant, which was sent after t0.
  expect(gotAt - t0).toBeGreaterThanOrEqual(ttl);
  expect(gotAt - t0).toBeLessThan(ttl + 8_000);
  expect(lb.token).toBeGreaterThan(la.token);
  // The crashed side's lock ended on its own: a renewal through a closed client ends it.
  await until('crashed lock aborted', async () => la.signal.aborted, 5_000);
  expect(la.held).toBe(false);
  expect(la.signal.reason).toBeInstanceOf(LockLostException);
});

test('wait 0 on a held lock: LockTimeoutException at once, and no queue key left behind', async () => {
  const keys = freshKeys();
  const holder = keep(await node(keys, 'h').locks.acquire('w', { ttl: 5_000 }));
  const other = node(keys, 'o').locks;
  const t0 = performance.now();
  const err = await other.acquire('w', { ttl: 5_000, wait: 0 }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LockTimeoutException);
  expect((err as LockTimeoutException).lockName).toBe('w');
  expect(performance.now() - t0).toBeLessThan(2_000);
  expect(await queueLength(keys, 'w')).toBe(1);
  expect(holder.held).toBe(true);

  // A timed wait ends the same way, after its wait.
  const t1 = performance.now();
  await expect(other.acquire('w', { ttl: 5_000, wait: 700 })).rejects.toBeInstanceOf(LockTimeoutException);
  expect(performance.now() - t1).toBeGreaterThanOrEqual(690);
  expect(await queueLength(keys, 'w')).toBe(1);
});

test('a waiter keeps its place (its key and lease) while it waits several times its ttl', async () => {
  const keys = freshKeys();
  const ttl = 1_000;
  const holder = await node(keys, 'h').locks.acquire('long', { ttl });
  const pw = node(keys, 'w').locks.acquire('long', { ttl, wait: 30_000 }).then(keep);
  await until('waiter queued', async () => (await queueLength(keys, 'long')) === 2);
  const queued = await observer.getAll().prefix(keys.lockPrefix('long')).sort('Create', 'Descend').limit(1).exec();
  const waiterRevision = Number(queued.kvs[0]!.create_revision);
  await new Promise((r) => setTimeout(r, 3.5 * ttl)); // several etcd lease lengths
  expect(await queueLength(keys, 'long')).toBe(2);
  expect(holder.held).toBe(true);
  await holder.release();
  const lw = await pw;
  expect(lw.token).toBe(waiterRevision); // the same key: it never had to queue again
});

test('wait 0 on a free lock acquires it', async () => {
  const keys = freshKeys();
  const l = keep(await node(keys, 'a').locks.acquire('free', { ttl: 2_000, wait: 0 }));
  expect(l.held).toBe(true);
});

test('an abort while waiting rejects with its reason and removes the waiter\'s key; the queue behind it moves on', async () => {
  const keys = freshKeys();
  const holder = await node(keys, 'h').locks.acquire('ab', { ttl: 5_000 });
  const waiter = node(keys, 'w').locks;
  const third = node(keys, 't').locks;
  const ac = new AbortController();
  const pw = waiter.acquire('ab', { ttl: 5_000, wait: 30_000, signal: ac.signal });
  await until('waiter queued', async () => (await queueLength(keys, 'ab')) === 2);
  const pt = third.acquire('ab', { ttl: 5_000, wait: 30_000 }).then(keep);
  await until('third queued', async () => (await queueLength(keys, 'ab')) === 3);
  const reason = new Error('caller gave up');
  const t0 = performance.now();
  ac.abort(reason);
  await expect(pw).rejects.toBe(reason);
  expect(performance.now() - t0).toBeLessThan(2_000);
  expect(await queueLength(keys, 'ab')).toBe(2);
  // The third waited behind the aborted one; it now waits behind the holder and gets the lock on release.
  await holder.release();
  const lt = await pt;
  expect(lt.token).toBeGreaterThan(holder.token);
  // An already aborted signal does not even queue.
  await expect(waiter.acquire('ab', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  expect(await queueLength(keys, 'ab')).toBe(1);
});

test('a holder cut off from etcd: its signal aborts (lease not renewable) before the waiter gets the lock', async () => {
  const keys = freshKeys();
  const relay = await freezableRelay(etcd.members[0]!.clientUrl);
  try {
    const ttl = 2_000;
    const cut = node(keys, 'cut', newClient([relay.url])).locks;
    const waiter = node(keys, 'waiter').locks;
    const la = await cut.acquire('p', { ttl });
    let abortedAt = 0;
    la.signal.addEventListener('abort', () => (abortedAt = performance.now()));
    // Renewals run every ttl/3: let a few succeed, then cut the holder off.
    await new Promise((r) => setTimeout(r, ttl));
    expect(la.held).toBe(true);
    relay.freeze();
    const cutAt = performance.now();
    const lb = keep(await waiter.acquire('p', { ttl, wait: 30_000 }));
    const gotAt = performance.now();
    expect(abortedAt).toBeGreaterThan(0);
    expect(abortedAt).toBeLessThan(gotAt);
    expect(abortedAt - cutAt).toBeLessThan(ttl); // it gave up by its own clock, within one lease of the cut
    expect(la.held).toBe(false);
    expect(la.signal.reason).toBeInstanceOf(LockLostException);
    expect(lb.token).toBeGreaterThan(la.token);
  } finally {
    await relay.close();
  }
});

test('a holder whose key etcd drops early: the waiter counts the lock only a ttl later, after the holder stopped trusting it', async () => {
  const keys = freshKeys();
  const ttl = 2_000;
  const holder = await node(keys, 'h').locks.acquire('early', { ttl });
  const head = await headOf(keys, 'early');
  expect(head.value).toEqual({ owner: 'h', ttl }); // the ttl a successor has to wait out
  let gotAt = 0;
  const pw = node(keys, 'w').locks.acquire('early', { ttl, wait: 30_000 }).then((l) => ((gotAt = performance.now()), keep(l)));
  await until('waiter queued', async () => (await queueLength(keys, 'early')) === 2);
  // One clock, one sampler: the holder's last moment of held === true against the waiter's grant.
  let lastHeld = 0;
  const sampler = setInterval(() => {
    if (holder.held) lastHeld = performance.now();
  }, 5);
  try {
    expect(holder.held).toBe(true);
    // What a stale etcd leader does: the lease goes while the holder still trusts its local lease.
    const droppedAt = performance.now();
    await observer.leaseClient.leaseRevoke({ ID: head.lease });
    const lw = await pw;
    expect(gotAt - droppedAt).toBeGreaterThanOrEqual(ttl);
    expect(gotAt).toBeGreaterThan(lastHeld);
    expect(holder.held).toBe(false);
    expect(holder.signal.aborted).toBe(true);
    expect(holder.signal.reason).toBeInstanceOf(LockLostException);
    expect(lw.token).toBeGreaterThan(holder.token);
  } finally {
    clearInterval(sampler);
  }
});

test('a released holder marks its key before it goes; a wait shorter than the takeover wait times out, leaving no key', async () => {
  const keys = freshKeys();
  const ttl = 2_000;
  const la = await node(keys, 'a').locks.acquire('mark', { ttl });
  const { key } = await headOf(keys, 'mark');
  // The value a successor's watch sees as the deleted key's previous one.
  const w = await observer.watch().key(key).only('delete').withPreviousKV().create();
  const prev = new Promise<unknown>((resolve) => w.on('delete', (_kv, p?: IKeyValue) => resolve(p && JSON.parse(p.value.toString()))));
  await la.release();
  expect(await prev).toEqual({ owner: 'a', ttl, released: true });
  await w.cancel();

  const holder = await node(keys, 'h').locks.acquire('mark', { ttl });
  const head = await headOf(keys, 'mark');
  // A wait well past the queueing and well short of the ttl: an ordinary timeout would come about 1.5 s after the
  // acquire started, the early one right after the revoke.
  const started = performance.now();
  const pw = node(keys, 'w').locks.acquire('mark', { ttl, wait: 1_500 });
  await until('waiter queued', async () => (await queueLength(keys, 'mark')) === 2);
  const t0 = performance.now();
  await observer.leaseClient.leaseRevoke({ ID: head.lease });
  await expect(pw).rejects.toBeInstanceOf(LockTimeoutException);
  // It knew at once that the lock could not count in time, well before its own deadline.
  expect(performance.now()).toBeLessThan(Math.max(t0 + 400, started + 1_300));
  expect(await queueLength(keys, 'mark')).toBe(0);
  await holder.release();
});

test("etcd's leader member paused for 3 s under contention from three clients: critical sections never overlap, tokens rise", async () => {
  const keys = freshKeys();
  const ttl = 1_000; // etcd's shortest lease: the paused etcd leader finds them all expired when it resumes
  const contenders = ['a', 'b', 'c'].map((o) => ({ owner: o, locks: node(keys, o, newClient(), 1_000).locks, current: null as DistributedLock | null }));
  const sections: { owner: string; token: number; start: number; end: number }[] = [];
  const open = new Map<DistributedLock, { owner: string; token: number; start: number; end: number }>();
  let overlaps = 0;
  const errors: string[] = [];
  // Every 5 ms on one clock: which locks believe they are held.
  const sampler = setInterval(() => {
    const now = performance.now();
    const holding = contenders.filter((c) => c.current?.held);
    for (const c of holding) open.get(c.current!)!.end = now;
    if (holding.length > 1) overlaps++;
  }, 5);
  let running = true;
  const loops = contenders.map(async (c) => {
    while (running) {
      let lock: DistributedLock;
      try {
        lock = await c.locks.acquire('busy', { ttl, wait: 30_000 });
      } catch (e) {
        errors.push(`${c.owner}: ${(e as Error).message}`);
        await sleep(20);
        continue;
      }
      const s = { owner: c.owner, token: lock.token, start: performance.now(), end: performance.now() };
      open.set(lock, s);
      sections.push(s);
      c.current = lock;
      // Work for most of a lease: a holder whose key etcd dropped early keeps trusting its lease meanwhile.
      for (let i = 0; i < 140 && lock.held; i++) await sleep(5);
      if (lock.held) s.end = performance.now();
      c.current = null;
      await lock.release();
    }
  });
  const etcdLeader = await etcd.settled(20_000);
  let resumedAt = 0;
  try {
    await sleep(1_500);
    etcdLeader.pause();
    await sleep(3_000);
    etcdLeader.resume();
    resumedAt = performance.now();
    await sleep(5_000);
  } finally {
    etcdLeader.resume();
    running = false;
    await Promise.all(loops);
    clearInterval(sampler);
  }
  await etcd.settled(20_000);

  const byStart = [...sections].sort((x, y) => x.start - y.start);
  const overlapping = byStart.filter((s, i) => i > 0 && s.start < Math.max(...byStart.slice(0, i).map((p) => p.end)));
  expect({ overlaps, overlapping, errors: overlaps ? errors : [] }).toEqual({ overlaps: 0, overlapping: [], errors: [] });
  for (let i = 1; i < byStart.length; i++) expect(byStart[i]!.token).toBeGreaterThan(byStart[i - 1]!.token);
  expect(sections.length).toBeGreaterThan(4); // sections stretch on a loaded machine; only their order is the point
  expect(sections.some((s) => s.start > resumedAt)).toBe(true); // it recovered
});
