/**
 * 60 s of chaos on three real node processes (ports 18720–18722, seed 1): kill -9 and restart, SIGSTOP/SIGCONT,
 * leadership transfers and clock-rate skew while kv and lock clients work. The kv history must be linearizable and
 * the lock history must pass the fencing checks, and real work must have happened. The same runner as
 * `npm run chaos`; longer runs are in docs/reliability.md. Needs `npm run build` first.
 */
import { FAULT_KINDS } from '../chaos/nemesis.js';
import { runChaos, type ChaosSummary } from '../chaos/runner.js';

jest.setTimeout(240_000);

let summary: ChaosSummary;

beforeAll(async () => {
  summary = await runChaos({ seed: 1, nodes: 3, seconds: 60, basePort: 18720 });
  console.log(`e2e chaos: ${JSON.stringify(summary)}`);
});

test('no violation: the kv history is linearizable and every lock check passes', () => {
  expect(summary.violations).toEqual([]);
  expect(summary.linearizability.timedOut).toBe(false);
  expect(summary.result).toBe('pass');
});

test('real work happened under every kind of fault', () => {
  for (const kind of FAULT_KINDS) expect(summary.faults[kind]).toBeGreaterThan(0);
  for (const op of ['get', 'put', 'cas'] as const) expect(summary.ops[op]?.ok).toBeGreaterThan(100);
  expect(summary.lockGrants).toBeGreaterThan(20);
  expect(summary.fencing.accepted).toBeGreaterThan(20);
  expect(summary.lease.observations).toBeGreaterThan(20);
});
