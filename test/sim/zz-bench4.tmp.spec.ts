import { checkLinearizability, type SearchHints } from './linearizability.js';
import { kvModel, type KvState } from './kv-model.js';
import { concurrentHistory } from './zz-gen.tmp.js';
type H = SearchHints<KvState>;
const variants: Record<string, (h: H) => H> = {
  none: () => ({}),
  sym: (h) => ({ symmetryClasses: h.symmetryClasses }),
  symBlind: (h) => ({ symmetryClasses: h.symmetryClasses, blind: h.blind }),
  all: (h) => h,
};
it('dbg', () => {
  for (const [rate, n, corrupt] of [[0.05, 400, 0], [0.1, 400, 0], [0.01, 200, 1], [0.05, 100, 1], [0.1, 60, 1]] as const) {
    const line: string[] = [];
    for (const [name, f] of Object.entries(variants)) {
      const model = { ...kvModel, hints: (ops: Parameters<NonNullable<typeof kvModel.hints>>[0]) => f(kvModel.hints!(ops)) };
      let total = 0; let tos = 0; const t = Date.now();
      for (let seed = 1; seed <= 8; seed++) {
        const history = concurrentHistory(seed, 5, n, rate);
        if (corrupt) {
          const i = history.findIndex((o, k) => k > history.length * 0.75 && o.input.op === 'get' && o.return !== Infinity);
          history[i] = { ...history[i], output: { ok: true, value: 'never-written', version: 1 } };
        }
        const r = checkLinearizability(model, history, { budget: 3e6 });
        total += r.steps; if (r.timedOut) tos++;
      }
      line.push(`${name}=${total} (${tos} to, ${Date.now() - t}ms)`);
    }
    console.log(rate, n * 5, corrupt ? 'bad' : 'good', line.join('  '));
  }
}, 600000);
