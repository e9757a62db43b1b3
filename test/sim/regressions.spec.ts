import { REGRESSION_SEEDS } from './regressions';
import { runSimulation } from './simulation';

// Runtime-level seeds take seconds each when the whole suite shares two cores.
jest.setTimeout(120_000);

describe('simulator regression seeds', () => {
  test.each(REGRESSION_SEEDS.map((r) => [r.seed, r.nodes, `${r.level ?? 'core'}${r.membership ? ', membership' : ''}`, r.bug, r] as const))(
    'seed %i (%i nodes, %s): %s',
    async (seed, nodes, _what, _bug, r) => {
      const result = await runSimulation({ seed, nodes, level: r.level ?? 'core', membership: r.membership });
      expect(result.violation).toBeNull();
    },
  );
});
