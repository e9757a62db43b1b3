/**
 * SIGSTOP / SIGCONT on real node processes (ports 18300–18302): a paused leader is replaced and steps down when it
 * resumes, without two nodes ever holding a lease at once; a paused follower does not slow writes down. Needs
 * `npm run build` first.
 */
import type { StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import { claims, LeasePoller, overlaps } from '../support/lease-claims.js';
import { epochMs, type ProbeResult, type StallResult, type WriteLoadResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, percentile, sleep, waitUntil, type NodeProcess } from '../support/process-cluster.js';

jest.setTimeout(30_000);

let cluster: ProcessCluster;
/** Stopped in afterAll too, so a failed assertion cannot leave its timer running. */
let poller: LeasePoller | null = null;

beforeAll(async () => {
  assertBuilt();
  cluster = new ProcessCluster({ basePort: 18300 });
  await cluster.start();
});

afterAll(async () => {
  await poller?.stop();
  await cluster?.destroy();
});

test('a leader stopped for 1 s is replaced, steps down after SIGCONT, and no two nodes hold a lease at once', async () => {
  const old = await cluster.leader(5000);
  const others = cluster.nodes.filter((n) => n !== old);
  const lease = (poller = new LeasePoller(cluster.nodes));
  lease.start(10);
  await sleep(200);

  const stoppedAt = epochMs();
  await old.signal('SIGSTOP');
  // A new leader among the others, measured from the stop.
  const next = await cluster.leader(3000, others);
  const newLeaderAfterMs = epochMs() - stoppedAt;
  const stoppedFor = 1000 - (epochMs() - stoppedAt);
  if (stoppedFor > 0) await sleep(stoppedFor);

  // One write queued before SIGCONT (the resumed process reads it in its first event-loop turn) and one right after.
  const queued = old.request<WriteResult>({ op: 'put', key: 'to-old-leader-queued', value: 'q' }).then(
    (r) => ({ ok: true as const, r }),
    (e: Error) => ({ ok: false as const, e }),
  );
  await old.signal('SIGCONT');
  const resumedAt = epochMs();
  const after = old.request<WriteResult>({ op: 'put', key: 'to-old-leader-after', value: 'a' }).then(
    (r) => ({ ok: true as const, r }),
    (e: Error) => ({ ok: false as const, e }),
  );

  // The old leader steps down and follows another node.
  const stepDown = await waitUntil('the resumed leader following another node', 3000, async () => {
    const s = await old.status();
    return !s.isLeader && s.leaderId !== '' && s.leaderId !== old.id ? epochMs() - resumedAt : undefined;
  }, 5);
  await sleep(300);
  await lease.stop();
  const current = await cluster.leader(3000);

  const writes = { queued: await queued, after: await after };
  for (const [name, w] of Object.entries(writes)) {
    const key = name === 'queued' ? 'to-old-leader-queued' : 'to-old-leader-after';
    const e = await current.request<StoreEntry | null>({ op: 'get', key, consistency: 'linearizable' });
    // Either it failed (and applied at most once), or it succeeded and applied exactly once.
    if (w.ok) {
      expect(w.r.version).toBe(1);
      expect(e?.version).toBe(1);
    } else {
      expect(e === null || e.version === 1).toBe(true);
    }
  }

  const samples = lease.samples;
  const byLease = overlaps(claims(samples, (s) => s.isLeader && s.hasLease));
  const byStatus = overlaps(claims(samples, (s) => s.isLeader && s.leaseValid));
  const oldAfter = samples.filter((s) => s.nodeId === old.id && s.at >= resumedAt).sort((a, b) => a.at - b.at);
  const firstNew = samples.filter((s) => s.nodeId === next.id && s.hasLease).sort((a, b) => a.at - b.at)[0];
  const lastOld = samples.filter((s) => s.nodeId === old.id && s.hasLease && s.at < stoppedAt).sort((a, b) => b.at - a.at)[0];
  const report = {
    samples: samples.length,
    newLeaderAfterMs: Math.round(newLeaderAfterMs),
    oldLeaseBoundAfterStopMs: lastOld?.leaseBound ? Math.round(lastOld.leaseBound - stoppedAt) : null,
    newLeaseFromAfterStopMs: firstNew ? Math.round(firstNew.at - stoppedAt) : null,
    oldStepDownAfterResumeMs: Math.round(stepDown),
    oldFirstAnswersAfterResume: oldAfter.slice(0, 3).map((s) => ({
      atMs: Math.round(s.at - resumedAt),
      isLeader: s.isLeader,
      leaseValid: s.leaseValid,
      hasLease: s.hasLease,
      term: s.term,
    })),
    writes: Object.fromEntries(Object.entries(writes).map(([k, w]) => [k, w.ok ? `ok v${w.r.version}` : `failed: ${w.e.name}`])),
    overlapsByHasLease: byLease,
    overlapsByStatusLeaseValid: byStatus,
  };
  console.log(`e2e leader pause: ${JSON.stringify(report)}`);
  expect(samples.length).toBeGreaterThan(100);
  expect(firstNew).toBeDefined();
  // Neither what leader-only code checks (hasLease) nor what status() reports may overlap between two nodes.
  expect(byLease).toEqual([]);
  expect(byStatus).toEqual([]);
});

let stalled: { result: StallResult; otherLeader: ProbeResult; otherAfter: ProbeResult } | null = null;

test('a leader whose event loop stalls for 1 s is replaced, and hasLease() is false right after the stall', async () => {
  const old = await cluster.leader(5000);
  const others = cluster.nodes.filter((n) => n !== old);
  const pending = old.request<StallResult>({ op: 'stall', ms: 1000 });
  // Another node leads with a lease while the old one is stalled.
  const otherLeader = await waitUntil('a leader with a lease among the others', 3000, async () => {
    const ps = await Promise.all(others.map((n) => n.request<ProbeResult>({ op: 'probe' })));
    return ps.find((p) => p.isLeader && p.hasLease);
  }, 5);
  const result = await pending;
  const otherAfter = await cluster.node(otherLeader.nodeId).request<ProbeResult>({ op: 'probe' });
  stalled = { result, otherLeader, otherAfter };
  console.log(`e2e event-loop stall: ${JSON.stringify({ ...stalled.result, otherLeader: stalled.otherLeader, otherAfter: stalled.otherAfter })}`);
  expect(result.before.isLeader && result.before.hasLease).toBe(true);
  expect(result.hasLeaseAfter).toBe(false);
  // The other node held its lease before and after the stalled node's answer, in the same term: it held it then.
  expect(otherLeader.at).toBeLessThan(result.at);
  // otherAfter was asked for only once the stalled node's answer had arrived, so it is later by construction; its
  // `at` is not compared with result.at, since two processes' clocks differ by up to a millisecond or so.
  expect(otherAfter).toMatchObject({ isLeader: true, hasLease: true, term: otherLeader.term });
});

// Regression: status() once read the core's lease without first catching its tick clock up to real time (as
// hasValidLease() does), so right after an event-loop stall or a SIGSTOP longer than the lease it reported
// isLeader && leaseValid while another node held a valid lease. It now catches up first.
test('status() right after a 1 s event-loop stall does not report a lease another node now holds', () => {
  expect(stalled).not.toBeNull();
  const { statusAfter } = stalled!.result;
  expect(statusAfter.isLeader && statusAfter.leaseValid).toBe(false);
});

async function writeP50(leader: NodeProcess, ms: number, prefix: string): Promise<{ p50: number; n: number; errors: number }> {
  const r = await leader.request<WriteLoadResult>({ op: 'writeLoad', writers: 1, durationMs: ms, keyPrefix: prefix });
  return { p50: percentile(r.latencies, 0.5) / 1000, n: r.latencies.length, errors: r.errors };
}

/**
 * One measurement: `null` when leadership moved while it ran (a busy machine can starve a member past the 150 ms
 * election timeout), since the comparison then says nothing about a stopped follower.
 */
type P50 = Awaited<ReturnType<typeof writeP50>>;

async function pausedFollowerRun(): Promise<{ up: P50; paused: P50 } | null> {
  const leader = await cluster.leader(5000);
  const term = (await leader.status()).term;
  const follower = cluster.nodes.find((n) => n !== leader)!;
  await writeP50(leader, 300, 'warm-'); // warm-up: connections, JIT
  const up = await writeP50(leader, 1200, 'up-');

  await follower.signal('SIGSTOP');
  const stoppedAt = Date.now();
  try {
    await sleep(300); // past the first heartbeats that go unanswered
    const paused = await writeP50(leader, 2000, 'paused-');
    const s = await leader.status();
    if (!s.isLeader || s.term !== term) return null;
    // With one leader throughout, no write may fail.
    expect([up.errors, paused.errors]).toEqual([0, 0]);
    return { up, paused };
  } finally {
    const left = 3000 - (Date.now() - stoppedAt);
    if (left > 0) await sleep(left);
    await follower.signal('SIGCONT');
    // The resumed follower catches up.
    const target = (await (await cluster.leader(5000)).status()).commitIndex;
    await waitUntil('the resumed follower catching up', 5000, async () => ((await follower.status()).appliedIndex >= target ? true : undefined));
  }
}

test('with one follower stopped for 3 s, sequential write p50 on the leader stays within 1.5x of all-up', async () => {
  // Up to three tries, each needing one leader throughout; a run where leadership moved is reported and repeated.
  let result: Awaited<ReturnType<typeof pausedFollowerRun>> = null;
  for (let attempt = 1; attempt <= 3 && result === null; attempt++) {
    result = await pausedFollowerRun();
    if (result === null) console.log(`e2e paused follower: leadership moved during attempt ${attempt}; measuring again`);
  }
  expect(result).not.toBeNull();
  const { up, paused } = result!;
  console.log(
    `e2e paused follower: all-up p50 ${up.p50.toFixed(3)} ms (${up.n} writes), ` +
      `one follower stopped p50 ${paused.p50.toFixed(3)} ms (${paused.n} writes), ratio ${(paused.p50 / up.p50).toFixed(2)}`,
  );
  expect(paused.p50).toBeLessThanOrEqual(1.5 * up.p50);
}, 60_000);
