import { kvModel, type KvInput, type KvOperation, type KvOutput } from './kv-model.js';
const U: KvOutput = { unknown: true };
const INF = Infinity;
function op(clientId: number, input: KvInput, call: number, ret: number, output: KvOutput): KvOperation {
  return { clientId, input, call, output, return: ret };
}
const get = (key: string): KvInput => ({ op: 'get', key });
const put = (key: string, value: string): KvInput => ({ op: 'put', key, value });
const del = (key: string): KvInput => ({ op: 'delete', key });
const cas = (key: string, expectedVersion: number, value: string): KvInput => ({ op: 'cas', key, expectedVersion, value });
const okV = (version: number): KvOutput => ({ ok: true, version });
const read = (value: string | null, version: number): KvOutput => ({ ok: true, value, version });
const failed = (version: number): KvOutput => ({ ok: false, version });
void INF; void read;
/** A seeded PRNG (mulberry32), so the large generated histories are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `clients` clients each issue `perClient` ops back to back on one key; each op takes effect at a point inside its
 * interval, so at most `clients` known-outcome ops overlap. A fraction `unknownRate` time out: the client moves on,
 * and the op was applied or lost at random.
 */
export function concurrentHistory(seed: number, clients: number, perClient: number, unknownRate: number): KvOperation[] {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const planned: { client: number; call: number; point: number; ret: number; unknown: boolean }[] = [];
  for (let c = 0; c < clients; c++) {
    let t = 0;
    for (let k = 0; k < perClient; k++) {
      const call = t + int(3);
      const point = call + int(20);
      const ret = point + int(20);
      const unknown = rnd() < unknownRate;
      planned.push({ client: c, call, point, ret, unknown });
      t = unknown ? call + 25 : ret;
    }
  }
  planned.sort((a, b) => a.point - b.point || a.client - b.client);
  let state = kvModel.init();
  let writes = 0;
  return planned.map((p) => {
    const roll = rnd();
    let input: KvInput;
    if (roll < 0.4) input = get('k');
    else if (roll < 0.7) input = put('k', `w${writes++}`);
    else if (roll < 0.8) input = del('k');
    else input = cas('k', rnd() < 0.5 ? state.version : state.version + 1, `w${writes++}`);
    const before = state;
    if (!p.unknown || rnd() < 0.5) state = kvModel.step(state, input, U).state;
    let output: KvOutput = U;
    if (!p.unknown) {
      if (input.op === 'get') output = read(before.value, before.version);
      else if (input.op === 'cas' && before.version !== input.expectedVersion) output = failed(before.version);
      else output = okV(state.version);
    }
    return op(p.client, input, p.call, p.unknown ? INF : p.ret, output);
  });
}

