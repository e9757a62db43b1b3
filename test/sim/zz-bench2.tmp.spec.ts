import { checkLinearizability } from './linearizability.js';
import { kvModel } from './kv-model.js';
import { concurrentHistory } from './zz-gen.tmp.js';
it('dbg', () => {
  const history = concurrentHistory(42, 5, 400, 0.01);
  const i = history.findIndex((o, k) => k > history.length * 0.75 && o.input.op === 'get' && o.return !== Infinity);
  history[i] = { ...history[i], output: { ok: true, value: 'never-written', version: 1 } };
  const bad = checkLinearizability(kvModel, history, { budget: 1e6 });
  console.log(bad.steps, JSON.stringify((globalThis as unknown as { DBG: unknown }).DBG, null, 1));
});
