import { BROKEN_CORES, BROKEN_MEMBERSHIP_CORES } from './broken-cores';
import { BROKEN_LEADER_WORK } from './broken-leader-work';
import { BROKEN_LOCKS } from './broken-locks';
import { runSimulation } from './simulation';

// Runtime-level seeds take seconds each when the whole suite shares two cores.
jest.setTimeout(120_000);

/**
 * A checker that cannot fail proves nothing: each deliberately broken core must be caught by the check that guards
 * its rule, within a fixed range of seeds (deterministic, so this never flakes).
 */
const EXPECTED: Record<string, string> = {
  'commits-old-terms': 'commit-safety',
  'votes-twice': 'election-safety',
  'skips-up-to-date-check': 'leader-completeness',
  'assumes-lease': 'lease-exclusivity',
  'ignores-transfer-fence': 'lease-exclusivity',
};
const MAX_SEEDS = 400;

describe('simulator self-test', () => {
  test.each(Object.keys(BROKEN_CORES))('catches the broken core "%s"', async (name) => {
    let caught: { seed: number; kind: string } | null = null;
    for (let seed = 1; seed <= MAX_SEEDS && !caught; seed++) {
      const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5, core: BROKEN_CORES[name] });
      if (r.violation) caught = { seed, kind: r.violation.kind };
    }
    expect(caught).not.toBeNull();
    expect(caught!.kind).toBe(EXPECTED[name]);
  });

  // The runtime level adds the coordinator's checks: lock exclusion, fencing tokens, leader tasks that never overlap,
  // and the leader-work checks: forwarded work at most once, each fire time once, events in log order with no gap,
  // every operation settled within its bound.
  /** The check expected to catch each broken part first; a list where more than one check sees that same bug. */
  const RUNTIME_EXPECTED: Record<string, string | readonly string[]> = {
    'expires-early': 'lock-exclusion',
    'wall-clock-tokens': 'lock-token',
    'assumes-lease': 'task-overlap',
    // The retried body runs a second time (forward-twice), or the call's outcome contradicts its runs (forward-outcome),
    // whichever the first failing seed shows first.
    'retries-own-not-leader': ['forward-twice', 'forward-outcome'],
    'forgets-fire-times': 'fire-twice',
    'snapshots-drop-events': 'event-order',
    'no-deadline': 'unsettled',
  };
  test.each(Object.keys(RUNTIME_EXPECTED))('the runtime level catches "%s"', async (name) => {
    let caught: { seed: number; kind: string } | null = null;
    for (let seed = 1; seed <= 60 && !caught; seed++) {
      const r = await runSimulation({
        seed,
        nodes: seed % 2 === 0 ? 3 : 5,
        level: 'runtime',
        core: BROKEN_CORES[name],
        lockModule: BROKEN_LOCKS[name],
        broken: BROKEN_LEADER_WORK[name],
      });
      if (r.violation) caught = { seed, kind: r.violation.kind };
    }
    expect(caught).not.toBeNull();
    expect([RUNTIME_EXPECTED[name]].flat()).toContain(caught!.kind);
  });

  test('every broken lock table and leader-work part has an expected check', () => {
    expect([...Object.keys(BROKEN_LOCKS), ...Object.keys(BROKEN_LEADER_WORK)].every((k) => k in RUNTIME_EXPECTED)).toBe(true);
  });

  test('every broken core has an expected check', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(BROKEN_CORES).sort());
  });

  test('the correct core passes the same kind of runs', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5 });
      expect(r.violation).toBeNull();
    }
  });

  // The membership simulation (`--membership`): a new leader that changes the configuration before committing an entry
  // of its term is caught when the change an earlier, cut-off leader still holds could win too (commit safety, judged
  // with each candidate's own voters); a change of two voters at once by the check on committed configurations; a
  // learner that campaigns by the check on vote requests; learners counted toward commits by the commit-quorum check.
  const MEMBERSHIP_EXPECTED: Record<string, string> = {
    'skips-own-term-commit': 'commit-safety',
    'changes-two-voters': 'config-step',
    'learner-campaigns': 'learner-campaign',
    'counts-learners': 'commit-quorum',
  };
  test.each(Object.keys(BROKEN_MEMBERSHIP_CORES))('the membership simulation catches "%s"', async (name) => {
    let caught: { seed: number; kind: string } | null = null;
    for (let seed = 1; seed <= MAX_SEEDS && !caught; seed++) {
      const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5, membership: true, core: BROKEN_MEMBERSHIP_CORES[name] });
      if (r.violation) caught = { seed, kind: r.violation.kind };
    }
    expect(caught).not.toBeNull();
    expect(caught!.kind).toBe(MEMBERSHIP_EXPECTED[name]);
  });

  test('every broken membership core has an expected check', () => {
    expect(Object.keys(MEMBERSHIP_EXPECTED).sort()).toEqual(Object.keys(BROKEN_MEMBERSHIP_CORES).sort());
  });

  test('the correct core passes membership runs, which change the configuration and retire removed nodes', async () => {
    let committed = 0;
    let retired = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5, membership: true });
      expect(r.violation).toBeNull();
      committed += r.membership!.committed;
      retired += r.membership!.retired;
    }
    expect(committed).toBeGreaterThan(100);
    expect(retired).toBeGreaterThan(0);
  });

  test('a membership seed replays exactly', async () => {
    const a = await runSimulation({ seed: 3, nodes: 5, membership: true, trace: true });
    const b = await runSimulation({ seed: 3, nodes: 5, membership: true, trace: true });
    expect(b.steps).toBe(a.steps);
    expect(b.trace).toEqual(a.trace);
    expect(a.membership!.committed).toBeGreaterThan(0);
  });

  test('a seed replays exactly', async () => {
    const a = await runSimulation({ seed: 42, nodes: 5, trace: true });
    const b = await runSimulation({ seed: 42, nodes: 5, trace: true });
    expect(b.steps).toBe(a.steps);
    expect(b.trace).toEqual(a.trace);
    expect(a.commits).toBeGreaterThan(0);
    expect(a.ops).toBeGreaterThan(0);
  });

  test('a runtime-level seed with locks, leader tasks, forwarding, fires, events and a targeted fault replays exactly', async () => {
    const a = await runSimulation({ seed: 12, nodes: 3, level: 'runtime', trace: true });
    const b = await runSimulation({ seed: 12, nodes: 3, level: 'runtime', trace: true });
    expect(b.steps).toBe(a.steps);
    expect(b.trace).toEqual(a.trace);
    expect(a.lockGrants).toBeGreaterThan(0);
    expect(a.taskRuns).toBeGreaterThan(0);
    expect(a.leaderWork!.forwards).toBeGreaterThan(0);
    expect(a.leaderWork!.fires).toBeGreaterThan(0);
    expect(a.leaderWork!.eventsDelivered).toBeGreaterThan(0);
  });
});
