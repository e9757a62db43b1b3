import { BROKEN_CORES } from './broken-cores';
import { runSimulation } from './simulation';

/**
 * A checker that cannot fail proves nothing: each deliberately broken core must be caught by the check that guards
 * its rule, within a fixed range of seeds (deterministic, so this never flakes).
 */
const EXPECTED: Record<string, string> = {
  'commits-old-terms': 'commit-safety',
  'votes-twice': 'election-safety',
  'skips-up-to-date-check': 'leader-completeness',
  'assumes-lease': 'lease-exclusivity',
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

  test('every broken core has an expected check', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(BROKEN_CORES).sort());
  });

  test('the correct core passes the same kind of runs', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5 });
      expect(r.violation).toBeNull();
    }
  });

  test('a seed replays exactly', async () => {
    const a = await runSimulation({ seed: 42, nodes: 5, trace: true });
    const b = await runSimulation({ seed: 42, nodes: 5, trace: true });
    expect(b.steps).toBe(a.steps);
    expect(b.trace).toEqual(a.trace);
    expect(a.commits).toBeGreaterThan(0);
    expect(a.ops).toBeGreaterThan(0);
  });
});
