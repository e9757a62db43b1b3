/** EtcdStore against a real three-member etcd: the embedded store's semantics, and bounded failures when etcd is gone. */
import type { Etcd3 } from 'etcd3';
import { NoLeaderException, ProposalOutcomeUnknownError } from '../../lib/cluster/errors';
import { EtcdStore } from '../../lib/cluster/etcd/etcd-store';
import type { EtcdKeys } from '../../lib/cluster/etcd/keys';
import { etcdHosts, freshKeys, noRetryClient, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { freezableRelay } from '../support/freezable-relay';

jest.setTimeout(90_000);

const REQUEST_TIMEOUT = 3_000;
let etcd: EtcdCluster;
let client: Etcd3;
const extraClients: Etcd3[] = [];

/** Like production: no etcd3 retries, so nothing is re-sent behind the store's back. */
function newClient(hosts: string[]): Etcd3 {
  const c = noRetryClient(hosts);
  extraClients.push(c);
  return c;
}

function storeOn(c: Etcd3): { store: EtcdStore; keys: EtcdKeys } {
  const keys = freshKeys();
  return { store: new EtcdStore({ client: c, keys, requestTimeoutMs: REQUEST_TIMEOUT }), keys };
}

beforeAll(async () => {
  etcd = await startEtcd(3);
  client = newClient(etcdHosts(etcd));
}, 90_000);

afterAll(async () => {
  for (const c of extraClients) c.close();
  await etcd?.destroy();
});

test('put and get: version counts writes from 1, revision is the etcd mod revision and grows', async () => {
  const { store, keys } = storeOn(client);
  const w1 = await store.put('a', { n: 1 });
  expect(w1.version).toBe(1);
  const e1 = await store.get<{ n: number }>('a');
  expect(e1).toEqual({ value: { n: 1 }, version: 1, revision: w1.revision });
  const w2 = await store.put('a', { n: 2 });
  expect(w2.version).toBe(2);
  expect(w2.revision).toBeGreaterThan(w1.revision);
  expect(await store.get('a')).toEqual({ value: { n: 2 }, version: 2, revision: w2.revision });
  // The revision is etcd's own: the raw key agrees.
  const raw = await client.get(keys.kv('a')).exec();
  expect(Number(raw.kvs[0]!.mod_revision)).toBe(w2.revision);
  expect(await store.get('missing')).toBeUndefined();
});

test('delete: the key reads as absent, its version restarts at 1', async () => {
  const { store } = storeOn(client);
  const w = await store.put('k', 'v');
  await store.put('k', 'v2');
  const d = await store.delete('k');
  expect(d.version).toBe(0);
  expect(d.revision).toBeGreaterThan(w.revision);
  expect(await store.get('k')).toBeUndefined();
  expect((await store.delete('k')).version).toBe(0); // deleting an absent key is fine
  expect((await store.put('k', 'again')).version).toBe(1);
});

test('cas: succeeds only on the expected version, 0 meaning absent; a failure reports the current version', async () => {
  const { store } = storeOn(client);
  const c0 = await store.cas('c', 0, 'first');
  expect(c0).toMatchObject({ ok: true, version: 1 });
  const again = await store.cas('c', 0, 'second');
  expect(again).toEqual({ ok: false, version: 1, revision: c0.revision });
  const c1 = await store.cas('c', 1, 'third');
  expect(c1.ok).toBe(true);
  expect(c1.version).toBe(2);
  expect(c1.revision).toBeGreaterThan(c0.revision);
  expect(await store.cas('c', 5, 'nope')).toEqual({ ok: false, version: 2, revision: c1.revision });
  expect((await store.get('c'))?.value).toBe('third');
  await store.delete('c');
  expect(await store.cas('c', 2, 'stale')).toEqual({ ok: false, version: 0, revision: 0 });
  expect(await store.cas('c', 0, 'reborn')).toMatchObject({ ok: true, version: 1 });
});

test('local and linearizable reads both see a write (local may lag, so it is polled briefly), on every member', async () => {
  const { store, keys } = storeOn(client);
  const w = await store.put('r', [1, 2, 3]);
  expect(await store.get('r', { consistency: 'linearizable' })).toEqual({ value: [1, 2, 3], version: 1, revision: w.revision });
  for (const m of etcd.members) {
    const one = new EtcdStore({ client: newClient([m.clientUrl]), keys, requestTimeoutMs: REQUEST_TIMEOUT });
    expect((await one.get('r', { consistency: 'linearizable' }))?.revision).toBe(w.revision);
    const until = Date.now() + 5_000;
    let local = await one.get('r', { consistency: 'local' });
    while (local === undefined && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      local = await one.get('r', { consistency: 'local' });
    }
    expect(local).toEqual({ value: [1, 2, 3], version: 1, revision: w.revision });
  }
});

test('values come back as deep copies: changing what was read changes neither the store nor the next read', async () => {
  const { store } = storeOn(client);
  const value = { nested: { list: [1, { x: 'y' }] }, n: 7 };
  await store.put('obj', value);
  value.n = 8; // the caller's object after the put is not the stored one
  const a = await store.get<typeof value>('obj');
  const b = await store.get<typeof value>('obj');
  expect(a!.value).not.toBe(b!.value);
  a!.value.nested.list.push(99);
  a!.value.n = 100;
  expect((await store.get('obj'))!.value).toEqual({ nested: { list: [1, { x: 'y' }] }, n: 7 });
  expect(b!.value).toEqual({ nested: { list: [1, { x: 'y' }] }, n: 7 });
});

test('bad keys and expected versions are TypeErrors, as in the embedded store', async () => {
  const { store } = storeOn(client);
  const keyMsg = 'store keys are non-empty strings';
  await expect(store.put('', 1)).rejects.toThrow(new TypeError(keyMsg));
  await expect(store.put(5 as unknown as string, 1)).rejects.toThrow(new TypeError(keyMsg));
  await expect(store.delete('')).rejects.toThrow(new TypeError(keyMsg));
  await expect(store.get('')).rejects.toThrow(new TypeError(keyMsg));
  await expect(store.cas('', 0, 1)).rejects.toThrow(new TypeError(keyMsg));
  for (const bad of [-1, 1.5, Number.NaN, Infinity]) {
    await expect(store.cas('k', bad, 1)).rejects.toThrow(
      new TypeError(`cas expectedVersion must be a whole number >= 0 (0 = absent), got ${bad}`),
    );
  }
  expect(await store.get('k')).toBeUndefined(); // nothing was written
});

test('a stalled etcd (connected, never answering): put rejects within about the request timeout, not later', async () => {
  const relay = await freezableRelay(etcd.members[0]!.clientUrl);
  try {
    const { store } = storeOn(newClient([relay.url]));
    expect((await store.put('s', 1)).version).toBe(1); // the connection is up
    relay.freeze();
    const t0 = performance.now();
    const err = await store.put('s', 2).then(
      () => null,
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(ProposalOutcomeUnknownError); // sent, no answer: it may have applied
    expect(took).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 50);
    expect(took).toBeLessThan(REQUEST_TIMEOUT + 2_000);
  } finally {
    await relay.close();
  }
});

test('all etcd members killed: put and get reject with NoLeaderException or ProposalOutcomeUnknownError in time', async () => {
  const { store } = storeOn(client);
  await store.put('dead', 1);
  await Promise.all(etcd.members.map((m) => m.stop('SIGKILL')));
  try {
    for (const op of [() => store.put('dead', 2), () => store.get('dead'), () => store.cas('dead', 1, 3)]) {
      const t0 = performance.now();
      const err = await op().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err instanceof NoLeaderException || err instanceof ProposalOutcomeUnknownError).toBe(true);
      expect(performance.now() - t0).toBeLessThan(REQUEST_TIMEOUT + 2_000);
    }
    // Connection refused: the request surely never reached etcd.
    const fresh = storeOn(newClient(etcdHosts(etcd))).store;
    const err = await fresh.put('x', 1).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NoLeaderException);
    expect((err as Error).message).toMatch(/^etcd unreachable/);
  } finally {
    for (const m of etcd.members) m.start();
    await etcd.settled(30_000);
  }
});
