import { REGRESSION_SEEDS } from './regressions';
import { runSimulation } from './simulation';

// Runtime-level seeds take seconds each when the whole suite shares two cores.
jest.setTimeout(120_000);

describe('simulator regression seeds', () => {
  test.each(REGRESSION_SEEDS.map((r) => [r.seed, r.nodes, r.level ?? 'core', r.bug] as const))('seed %i (%i nodes, %s): %s', async (seed, nodes, level) => {
    const r = await runSimulation({ seed, nodes, level });
    expect(r.violation).toBeNull();
  });
});
