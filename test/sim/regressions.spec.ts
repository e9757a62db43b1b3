import { REGRESSION_SEEDS } from './regressions';
import { runSimulation } from './simulation';

describe('simulator regression seeds', () => {
  test.each(REGRESSION_SEEDS.map((r) => [r.seed, r.nodes, r.bug] as const))('seed %i (%i nodes): %s', async (seed, nodes) => {
    const r = await runSimulation({ seed, nodes });
    expect(r.violation).toBeNull();
  });
});
