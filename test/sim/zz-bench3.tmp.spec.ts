import { checkLinearizability } from './linearizability.js';
import { kvModel } from './kv-model.js';
import { concurrentHistory } from './zz-gen.tmp.js';
it('dbg', () => {
  for (const [rate, n] of [[0, 400], [0.01, 400], [0.05, 200]]) {
  const history = concurrentHistory(42, 5, n, rate);
  const i = history.findIndex((o, k) => k > history.length * 0.75 && o.input.op === 'get' && o.return !== Infinity);
  history[i] = { ...history[i], output: { ok: true, value: 'never-written', version: 1 } };
  const t = Date.now();
  const bad = checkLinearizability(kvModel, history, { budget: 1e8 });
  console.log(rate, n, bad.steps, Date.now() - t, bad.timedOut);
  }
}, 600000);
