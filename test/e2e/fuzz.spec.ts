/**
 * A short fuzz run inside the normal suite (ports 18700–18708): random and mutated frames — mutations of traffic
 * recorded from a real cluster — at three live node processes, before authentication and after a genuine handshake
 * as a member. `npm run fuzz -- --count 1000000` is the long run (docs/reliability.md). Needs `npm run build` first.
 * CATGA_FUZZ_FRAMES and CATGA_FUZZ_SEED change the count (default 10,000) and the seed (default: a new one, printed).
 */
import { assertBuilt } from '../support/process-cluster.js';
import { runFuzz, type FuzzSummary } from '../fuzz/run.js';

jest.setTimeout(180_000);

const COUNT = Number(process.env.CATGA_FUZZ_FRAMES ?? 10_000);
const SEED = Number(process.env.CATGA_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

let summary: FuzzSummary;

beforeAll(async () => {
  assertBuilt();
  summary = await runFuzz({ count: COUNT, seed: SEED, basePort: 18700 });
  const { fuzzFramesBySource: _sources, dropsByReason: _reasons, ...brief } = summary;
  console.log(`fuzz (replay with CATGA_FUZZ_SEED=${SEED}): ${JSON.stringify(brief)}`);
});

test('nothing crashes, and nothing but the nodes\' own one-line messages reaches their logs', () => {
  expect(summary.fuzzFrames).toBeGreaterThanOrEqual(COUNT);
  expect(summary.crashes).toEqual([]);
  expect(summary.internalErrors).toEqual([]);
  expect(summary.foreignLogLines).toEqual([]);
});

test('every refusable input is dropped, with a logged reason; every connection that had to stay open did', () => {
  const o = summary.outcomes;
  expect(summary.examples).toEqual({ missedDrops: [], unloggedDrops: [], unexpectedCloses: [] });
  expect(o.authHandshakeFailures).toBe(0);
  expect(o.droppedAsExpected).toBe(summary.expected.drop);
  expect(o.stillOpenAsExpected).toBe(summary.expected.open);
  expect(summary.expected.drop).toBeGreaterThan(COUNT / 4);
  // Both sides of the handshake were reached: refusals before authentication and after it.
  const reasons = Object.keys(summary.dropsByReason);
  for (const r of ['failed authentication (wrong secret or replayed handshake)', 'RAFT frame during the handshake', 'malformed raft message', 'frame over the limit of 4096 bytes']) {
    expect(reasons).toContain(r);
  }
  expect(reasons.some((r) => r.endsWith('after authentication'))).toBe(true);
  expect(summary.fuzzFramesByMode.auth).toBeGreaterThan(COUNT / 10);
});

test('the cluster kept committing during the fuzz and after it, and lost no acknowledged write', () => {
  const c = summary.committing;
  expect(c.duringFuzz.acked).toBeGreaterThan(50);
  expect(c.duringFuzz.errors).toBe(0);
  expect(c.afterFuzz).toEqual({ writesOnEveryNode: true, ackedKeysMissing: 0 });
  expect(summary.pass).toBe(true);
});

test('memory stays bounded: no node grows by more than 150 MB', () => {
  for (const [id, r] of Object.entries(summary.rssBytes)) {
    expect({ id, growth: (r.peak ?? 0) - (r.before ?? 0) < 150 * 1024 * 1024 }).toEqual({ id, growth: true });
  }
});
