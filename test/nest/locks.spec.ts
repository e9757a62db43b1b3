import { LockLostException, LockTimeoutException } from '../../lib/index';
import { BACKENDS, backendOptions, stopSharedEtcd } from '../support/backends';
import { sleep, startTaskCluster, type TaskNode } from './task-fixtures';

jest.setTimeout(30_000);

afterAll(stopSharedEtcd);

interface Section {
  readonly node: string;
  readonly token: number;
  readonly start: number;
  end: number;
}

describe.each(BACKENDS)('cluster.locks across three Nest apps (%s backend)', (backend) => {
  let c: Awaited<ReturnType<typeof startTaskCluster>>;
  beforeAll(async () => {
    c = await startTaskCluster(undefined, [], await backendOptions(backend));
    await c.waitLeader();
  });
  afterAll(async () => {
    await c?.closeAll();
  });

  test('contention from three nodes: critical sections never overlap and fencing tokens strictly increase', async () => {
    const sections: Section[] = [];
    const worker = async (n: TaskNode) => {
      for (let i = 0; i < 5; i++) {
        const lock = await n.cluster.locks.acquire('res', { ttl: 2000, wait: 15_000 });
        const s: Section = { node: n.id, token: lock.token, start: Date.now(), end: 0 };
        await sleep(3);
        expect(lock.signal.aborted).toBe(false);
        s.end = Date.now();
        sections.push(s);
        await lock.release();
        expect(lock.signal.aborted).toBe(true);
      }
    };
    // Two workers per node, so requests from one process contend too.
    await Promise.all(c.nodes.flatMap((n) => [worker(n), worker(n)]));
    expect(sections).toHaveLength(30);
    const sorted = [...sections].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i - 1]!.end).toBeLessThanOrEqual(sorted[i]!.start);
      expect(sorted[i]!.token).toBeGreaterThan(sorted[i - 1]!.token);
    }
    expect(new Set(sections.map((s) => s.node)).size).toBe(3);
  });

  test('wait: 0 tries once and throws LockTimeoutException; a waiter is served after the release', async () => {
    const [a, b] = c.nodes as [TaskNode, TaskNode];
    const held = await a.cluster.locks.acquire('once', { ttl: 2000 });
    const t0 = Date.now();
    await expect(b.cluster.locks.acquire('once', { wait: 0 })).rejects.toBeInstanceOf(LockTimeoutException);
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(b.cluster.locks.acquire('once', { wait: 150 })).rejects.toThrow(/not acquired within 150 ms/);
    const waiting = b.cluster.locks.acquire('once', { wait: 5000 });
    await sleep(50);
    await held.release();
    const next = await waiting;
    expect(next.token).toBeGreaterThan(held.token);
    await next.release();
  });

  test('a held lock renews itself past its ttl; renew() after release throws LockLostException', async () => {
    const n = c.nodes[1]!;
    const lock = await n.cluster.locks.acquire('long', { ttl: 300 });
    await sleep(800);
    expect(lock.signal.aborted).toBe(false);
    expect(lock.held).toBe(true);
    await expect(c.nodes[2]!.cluster.locks.acquire('long', { wait: 0 })).rejects.toBeInstanceOf(LockTimeoutException);
    await lock.release();
    await expect(lock.renew()).rejects.toBeInstanceOf(LockLostException);
  });

  test('the lock of a holder that stops is granted elsewhere after its TTL', async () => {
    const leader = await c.waitLeader();
    const [holder, other] = c.nodes.filter((n) => n !== leader) as [TaskNode, TaskNode];
    const ttl = 1000;
    const lock = await holder.cluster.locks.acquire('dead', { ttl });
    let abortedAt = 0;
    lock.signal.addEventListener('abort', () => (abortedAt = Date.now()));
    const waiting = other.cluster.locks.acquire('dead', { ttl, wait: 5000 }).then((l) => ({ l, at: Date.now() }));
    waiting.catch(() => undefined);
    await sleep(200);
    await c.crash(holder);
    const stoppedAt = Date.now();
    const { l: next, at: grantedAt } = await waiting;
    const waited = grantedAt - stoppedAt;
    expect(next.token).toBeGreaterThan(lock.token);
    // The stopped holder could not renew: its own signal said so before the lock was granted elsewhere.
    expect(lock.signal.reason).toBeInstanceOf(LockLostException);
    expect(abortedAt).toBeGreaterThan(0);
    expect(abortedAt).toBeLessThanOrEqual(grantedAt);
    // The last renewal was at most ttl/3 before the stop, so the lease ran at least 2/3 of the ttl past it.
    expect(waited).toBeGreaterThanOrEqual(ttl / 2);
    expect(waited).toBeLessThan(ttl + 1500);
    await next.release();
  });
});
