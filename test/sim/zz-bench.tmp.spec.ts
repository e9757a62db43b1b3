import { checkLinearizability } from './linearizability.js';
import { kvModel } from './kv-model.js';
import { concurrentHistory } from './zz-gen.tmp.js';
it('bench', () => {
  for (const rate of [0, 0.01, 0.05, 0.1]) for (const n of [100, 200, 400]) {
    const history = concurrentHistory(42, 5, n, rate);
    const i = history.findIndex((o, k) => k > history.length * 0.75 && o.input.op === 'get' && o.return !== Infinity);
    let t = Date.now();
    const good = checkLinearizability(kvModel, history, { budget: 5e6 });
    const tg = Date.now() - t;
    history[i] = { ...history[i], output: { ok: true, value: 'never-written', version: 1 } };
    t = Date.now();
    const bad = checkLinearizability(kvModel, history, { budget: 5e6 });
    console.log(rate, n * 5, 'good', good.ok, good.steps, tg, 'ms; bad', bad.ok, bad.timedOut, bad.steps, Date.now() - t, 'ms');
  }
});
