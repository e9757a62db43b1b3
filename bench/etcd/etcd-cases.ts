/**
 * The etcd side of each comparison, driven by the etcd3 client from the benchmark process: puts, linearizable range
 * reads, lock acquire + release (etcd3's lock helper: lease grant, a create-if-absent transaction, lease revoke),
 * kill -9 of the leader, SIGTERM of the leader (etcd hands leadership over before it stops).
 */
import { epochMs } from '../../test/support/node-protocol.js';
import { sleep } from '../../test/support/process-cluster.js';
import { runLoad, type LoadResult } from '../load.js';
import { percentile, throughput, type Measurement } from '../measure.js';
import { firstCommit, gracefulPause, type FailoverRound, type GracefulRound, type WriterTrace } from '../rounds.js';
import type { EtcdCluster, EtcdMember } from '../../test/support/etcd-cluster.js';

/** A deadline for one request, so nothing waits on a dead member for etcd's own 5 s request timeout and more. */
const call = (ms: number) => ({ deadline: Date.now() + ms });

function measured(r: LoadResult, extra: Measurement): Measurement {
  return { ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors), ...extra };
}

function put(m: EtcdMember, key: string, value: number, timeoutMs = 10_000): Promise<unknown> {
  return m.client.put(key).value(String(value)).options(call(timeoutMs)).exec();
}

export async function etcdWriteCase(m: EtcdMember, writers: number, ms: number, prefix: string): Promise<Measurement> {
  const r = await runLoad(writers, ms, (w, i) => put(m, `${prefix}${w}-${i}`, i));
  return measured(r, { writers, ranOn: m.name });
}

/** Linearizable reads (etcd's default for a range request: it goes through a ReadIndex on the leader). */
export async function etcdReadCase(m: EtcdMember, readers: number, ms: number, keys: readonly string[]): Promise<Measurement> {
  const r = await runLoad(readers, ms, (w, i) => m.client.get(keys[(w + i * readers) % keys.length]!).options(call(10_000)).string());
  return measured(r, { readers, ranOn: m.name });
}

/** `workers` loops of acquire then release, one lock name per worker. */
export async function etcdLockCase(m: EtcdMember, workers: number, ms: number, prefix: string, ttlSeconds: number): Promise<Measurement> {
  const r = await runLoad(workers, ms, async (w) => {
    const lock = m.client.lock(`${prefix}${w}`).ttl(ttlSeconds).options(call(10_000));
    await lock.acquire();
    await lock.release();
  });
  return measured(r, { workers, ranOn: m.name });
}

/** kill -9 of the leader under light load; a fresh put every few ms on each survivor until one is acknowledged. */
export async function etcdFailoverRound(c: EtcdCluster, round: number): Promise<FailoverRound> {
  const leader = await c.settled();
  const survivors = c.members.filter((m) => m !== leader);
  // Light background traffic, so the leader dies with replication in flight (as on our side).
  const background = survivors.map((s) => runLoad(2, 600, (w, i) => put(s, `fo${round}-bg-${s.name}-${w}-${i}`, i, 2000)));
  await sleep(200);
  const killAt = epochMs();
  await leader.stop('SIGKILL');
  let electedAt = Number.NaN;
  const elected = c.leaderAmong(survivors, 10_000).then(() => (electedAt = epochMs()));
  const first = await firstCommit(survivors, 10_000, (s, n) => put(s, `fo${round}-probe-${s.name}-${n}`, n, 3000));
  await elected.catch(() => undefined);
  await Promise.all(background);
  await c.restart(leader);
  return { ms: first.at - killAt, electedMs: electedAt - killAt, killed: leader.name, firstCommitOn: first.target.name };
}

/** A put is hedged after this long without an acknowledgement. */
const HEDGE_MS = 10;

/**
 * One writer against `s` for `ms`: one put at a time, and another whenever none was acknowledged for HEDGE_MS. etcd
 * drops proposals forwarded to a leader that is handing over, and such a put waits for its deadline; hedging keeps a
 * fresh put in flight, so the gap shows when etcd could commit again rather than the client's timeout.
 */
async function hedgedWriter(s: EtcdMember, ms: number, prefix: string): Promise<{ trace: WriterTrace; errors: number }> {
  const ackAt: number[] = [];
  const pending = new Set<Promise<void>>();
  let errors = 0;
  let i = 0;
  let lastLaunch = 0;
  const startedAt = epochMs();
  const end = performance.now() + ms;
  const launch = () => {
    const n = i++;
    lastLaunch = performance.now();
    const p: Promise<void> = put(s, `${prefix}${s.name}-${n}`, n, 3000)
      .then(
        () => void ackAt.push(epochMs()),
        () => void errors++,
      )
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  while (performance.now() < end) {
    if (pending.size === 0 || performance.now() - lastLaunch >= HEDGE_MS) launch();
    await Promise.race([...pending, sleep(HEDGE_MS)]);
  }
  const endedAt = epochMs();
  await Promise.all(pending);
  return { trace: { startedAt, endedAt, ackAt: ackAt.filter((t) => t <= endedAt) }, errors };
}

/** SIGTERM to the leader while one (hedged) writer runs against each survivor: the longest write pause around the stop. */
export async function etcdGracefulRound(c: EtcdCluster, round: number): Promise<GracefulRound> {
  const leader = await c.settled();
  const survivors = c.members.filter((m) => m !== leader);
  const base = await Promise.all(survivors.map((s) => hedgedWriter(s, 600, `gs${round}-base-`)));
  const loads = survivors.map((s) => hedgedWriter(s, 1500, `gs${round}-`));
  await sleep(500);
  const t0 = epochMs();
  await leader.stop('SIGTERM');
  const sigtermToExitMs = epochMs() - t0;
  const results = await Promise.all(loads);
  await c.restart(leader);
  return gracefulPause(
    results.map((r) => r.trace),
    base.map((r) => r.trace),
    t0,
    sigtermToExitMs,
    results.reduce((n, r) => n + r.errors, 0),
  );
}

/** What the fan-out case measured on one side: per event, publish start to the last of the three deliveries, ms. */
export interface FanoutSample {
  readonly latenciesMs: number[];
  /** Events published but not seen by every member (watcher or node) before the wait ran out. */
  readonly undelivered: number;
  readonly errors: number;
  /** epochMs() of the first and last publish start. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Side-specific breakdown, stored alongside. */
  readonly detail?: Measurement;
}

/**
 * etcd's counterpart of a cluster event fanned out to every node: `count` puts under `prefix` on `publisher`, open loop
 * at `ratePerSec`, each one's start taken just before the put; one watcher per member (on that member's own client)
 * notes when it sees each key. Publisher and watchers share this process's event loop and clock.
 */
export async function etcdFanoutCase(c: EtcdCluster, publisher: EtcdMember, count: number, ratePerSec: number, prefix: string): Promise<FanoutSample> {
  const seen = c.members.map(() => new Map<string, number>());
  const watchers = await Promise.all(
    c.members.map(async (m, i) => {
      const w = await m.client.watch().prefix(prefix).create();
      w.on('put', (kv) => void seen[i]!.set(kv.key.toString(), epochMs()));
      return w;
    }),
  );
  try {
    const keys: string[] = [];
    const startAt: number[] = [];
    const ackAt: number[] = [];
    const pending: Promise<unknown>[] = [];
    let errors = 0;
    const intervalMs = 1000 / ratePerSec;
    const origin = performance.now();
    for (let i = 0; i < count; ) {
      const wait = origin + i * intervalMs - performance.now();
      if (wait > 0) {
        await sleep(wait);
        continue;
      }
      const key = `${prefix}${i}`;
      keys.push(key);
      startAt.push(epochMs());
      const k = i;
      pending.push(put(publisher, key, i).then(() => void (ackAt[k] = epochMs()), () => void errors++));
      i++;
    }
    await Promise.all(pending);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !seen.every((s) => s.size >= keys.length)) await sleep(20);
    const latenciesMs: number[] = [];
    const ackMs: number[] = [];
    const perMember: number[][] = c.members.map(() => []);
    let undelivered = 0;
    keys.forEach((k, i) => {
      if (ackAt[i] !== undefined) ackMs.push(ackAt[i]! - startAt[i]!);
      const at = seen.map((s) => s.get(k));
      at.forEach((x, j) => x !== undefined && perMember[j]!.push(x - startAt[i]!));
      if (at.some((x) => x === undefined)) undelivered++;
      else latenciesMs.push(Math.max(...(at as number[])) - startAt[i]!);
    });
    const q = (xs: readonly number[], p: number) => Number(percentile(xs, p).toFixed(3));
    const detail: Measurement = {
      publishAckP50Ms: q(ackMs, 0.5),
      publishAckP99Ms: q(ackMs, 0.99),
      nodes: c.members.map((m) => m.name).join(' '),
      nodeDeliveryP50Ms: perMember.map((xs) => q(xs, 0.5)),
      nodeDeliveryP99Ms: perMember.map((xs) => q(xs, 0.99)),
    };
    return { latenciesMs, undelivered, errors, startedAt: startAt[0] ?? Number.NaN, endedAt: startAt[startAt.length - 1] ?? Number.NaN, detail };
  } finally {
    await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
  }
}
