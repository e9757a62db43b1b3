import { ApplyError, ClusterStateMachine } from '../../lib/cluster/state/cluster-state-machine';
import { pack } from '../../lib/cluster/msgpack';
import { decodeImage, encodePayload, ImageWriter } from '../../lib/cluster/state/entry-codec';

let index = 0;
const apply = (sm: ClusterStateMachine, module: string, command: unknown, time = 1_000) =>
  sm.apply({ index: ++index, term: 1, data: encodePayload({ module, command, time, session: { client: 'c', seq: index } }) });

function filled(keys: number): ClusterStateMachine {
  const sm = new ClusterStateMachine();
  for (let i = 0; i < keys; i++) apply(sm, 'kv', { op: 'put', key: `k${i}`, value: { n: i, s: 'x'.repeat(i % 7) } });
  apply(sm, 'lock', { op: 'acquire', name: 'job', owner: 'o', requestId: 'r1', leaseMs: 500, waitMs: 0 });
  return sm;
}

describe('ClusterStateMachine snapshots', () => {
  test('an image encoded in slices restores the same state as one encoded at once', async () => {
    const a = filled(5000);
    let pauses = 0;
    const sliced = await a.snapshotInSlices(async () => void pauses++);
    expect(pauses).toBeGreaterThan(1);
    expect(Buffer.from(sliced).equals(Buffer.from(a.snapshot()))).toBe(true);
    const b = new ClusterStateMachine();
    b.restore(sliced);
    expect(b.appliedIndex).toBe(a.appliedIndex);
    expect(b.kv.size).toBe(5000);
    expect(b.kv.get('k4321')).toEqual(a.kv.get('k4321'));
    expect(b.locks.holder('job')).toEqual(a.locks.holder('job'));
    expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
  });

  test('writes applied while the slices are being encoded do not leak into the image', async () => {
    const a = filled(5000);
    const before = a.snapshot();
    let step = 0;
    const sliced = await a.snapshotInSlices(async () => {
      // Between slices the runtime keeps applying: overwrite, delete and add keys, renew the lock.
      apply(a, 'kv', { op: 'put', key: `k${step * 3}`, value: 'changed' });
      apply(a, 'kv', { op: 'delete', key: `k${step * 3 + 1}` });
      apply(a, 'kv', { op: 'put', key: `new${step}`, value: step });
      apply(a, 'lock', { op: 'renew', name: 'job', owner: 'o', token: a.locks.holder('job')?.token ?? 0 }, 2_000 + step);
      step++;
    });
    expect(step).toBeGreaterThan(1);
    expect(Buffer.from(sliced).equals(Buffer.from(before))).toBe(true);
  });

  test('a restore while the slices are being encoded leaves the image as it was at the start', async () => {
    const a = filled(3000);
    const before = a.snapshot();
    const other = filled(10).snapshot();
    let step = 0;
    const sliced = await a.snapshotInSlices(async () => {
      if (step++ === 1) a.restore(other);
    });
    expect(Buffer.from(sliced).equals(Buffer.from(before))).toBe(true);
    expect(a.kv.size).toBe(10);
  });

  test('an image sliced another way (2048 rows a slice, as earlier versions wrote) restores the same state', () => {
    const a = filled(5000);
    const [headBytes, ...slices] = decodeImage(a.snapshot()) as Uint8Array[];
    const head = decodeImage(headBytes!) as { bulk: [string, number][] };
    const kvSlices = head.bulk.find(([name]) => name === 'kv')![1];
    const kvRows = slices.slice(0, kvSlices).flatMap((b) => decodeImage(b) as unknown[]);
    const rest = slices.slice(kvSlices);
    const resliced: Uint8Array[] = [];
    for (let i = 0; i < kvRows.length; i += 2048) resliced.push(pack(kvRows.slice(i, i + 2048)));
    const bulk = head.bulk.map(([name, n]) => [name, name === 'kv' ? resliced.length : n]);
    const old = pack([pack({ ...head, bulk }), ...resliced, ...rest]);
    const b = new ClusterStateMachine();
    b.restore(old);
    expect(b.kv.size).toBe(5000);
    expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
  });

  test('an image written part by part is the bytes msgpack gives for the array of the parts, whatever it reserved', () => {
    for (const count of [0, 1, 15, 16, 300, 70_000]) {
      for (const size of [0, 1, 255, 256, 65_535, 65_536]) {
        if (count * size > 20_000_000) continue;
        const parts = Array.from({ length: count }, (_, i) => Buffer.alloc(size, i & 0xff));
        const expected = Buffer.from(pack(parts));
        // Reserved far too little (grown in place, then moved to a larger reservation) and about right.
        for (const reserve of [0, expected.byteLength]) {
          const w = new ImageWriter(count, reserve);
          for (const p of parts) w.addBytes(p);
          expect(Buffer.from(w.finish()).equals(expected)).toBe(true);
        }
        const packed = new ImageWriter(count, 0);
        for (const p of parts) packed.add(p);
        expect(Buffer.from(packed.finish()).equals(Buffer.from(pack(parts.map((p) => pack(p)))))).toBe(true);
      }
    }
  });

  test('an image writer refuses more or fewer parts than it announced', () => {
    const more = new ImageWriter(1, 0);
    more.add('a');
    expect(() => more.add('b')).toThrow(/more parts than announced/);
    const fewer = new ImageWriter(2, 0);
    fewer.add('a');
    expect(() => fewer.finish()).toThrow(/1 announced parts were not added/);
  });

  test('an empty state round-trips', async () => {
    const b = new ClusterStateMachine();
    b.restore(await new ClusterStateMachine().snapshotInSlices(async () => undefined));
    expect(b.kv.size).toBe(0);
    expect(b.appliedIndex).toBe(0);
  });

  test('a malformed command is answered with an ApplyError on every node instead of throwing', () => {
    for (const command of [null, 42, 'put', { op: 'put' }, { op: 'nonsense', key: 'k' }]) {
      const sm = new ClusterStateMachine();
      const r = apply(sm, 'kv', command);
      expect(r).toBeInstanceOf(ApplyError);
      expect(apply(sm, 'kv', { op: 'put', key: 'after', value: 1 })).toMatchObject({ version: 1 });
    }
    expect(apply(new ClusterStateMachine(), 'lock', null)).toBeInstanceOf(ApplyError);
  });
});

describe('results remembered for retries', () => {
  // Regression: an ApplyError became a plain object in the snapshot, so a retried failing command read as success.
  test('a remembered ApplyError is still an ApplyError on a replica restored from a snapshot', () => {
    const data = encodePayload({ module: 'kv', command: { op: 'bogus', key: 'k' }, time: 0, session: { client: 'retrying', seq: 1 } });
    const a = new ClusterStateMachine();
    expect(a.apply({ term: 1, index: 1, data })).toBeInstanceOf(ApplyError);
    const b = new ClusterStateMachine();
    b.restore(a.snapshot());
    const retried = b.apply({ term: 2, index: 2, data });
    expect(retried).toBeInstanceOf(ApplyError);
    expect((retried as ApplyError).message).toMatch(/unknown kv op/);
  });
});

describe('task runs and terms', () => {
  test('the first entry of a newer term, even a leader no-op, marks runs of earlier terms abandoned; the term travels in snapshots', () => {
    const sm = new ClusterStateMachine();
    sm.apply({ term: 2, index: 1, data: encodePayload({ module: 'task', command: { op: 'start', task: 't', fireTime: 1, node: 'a', term: 2 }, time: 5 }) });
    expect(sm.tasks.latest('t')!.outcome).toBe('running');
    const restored = new ClusterStateMachine();
    restored.restore(sm.snapshot());
    expect(restored.appliedTerm).toBe(2);
    restored.apply({ term: 3, index: 2, data: new Uint8Array(0) });
    expect(restored.tasks.latest('t')!.outcome).toBe('abandoned');
  });
});
