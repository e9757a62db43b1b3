/**
 * A StatefulSet-like start, with pods as network namespaces and their names in a hosts file of the test's own:
 * node-0, node-1 and node-2 start strictly one after another, each only once the previous one answers readiness.
 * node-0 starts a new cluster of itself alone; the others join through the earlier pods' names. Then node-2 comes
 * back with a new IP under the same name, and rejoins under its id. Needs root, iproute2 and iptables; skipped with
 * the reason elsewhere. Needs `npm run build` first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../support/netns.js';
import type { ProbesResult, ReadKeysResult } from '../support/node-protocol.js';
import { NodeProcess, assertBuilt, waitUntil } from '../support/process-cluster.js';

jest.setTimeout(90_000);

const PODS = ['node-0', 'node-1', 'node-2'] as const;
/** Every pod listens on the same port, as in a StatefulSet: each namespace has its own. */
const PORT = 7400;

const reason = NetnsLab.unavailable();
if (reason) console.warn(`StatefulSet start test skipped: ${reason}`);
const maybe = reason ? describe.skip : describe;

maybe('a StatefulSet-like start in network namespaces, members given as host names', () => {
  let lab: NetnsLab;
  let dataRoot: string;
  const pods = new Map<string, NodeProcess>();

  beforeAll(() => {
    assertBuilt();
    lab = new NetnsLab(PODS);
    lab.writeHosts(Object.fromEntries(PODS.map((p) => [p, p])));
    dataRoot = mkdtempSync(join(tmpdir(), 'catga-sts-'));
  });

  afterAll(async () => {
    await Promise.all([...pods.values()].map((p) => p.signal('SIGKILL')));
    lab?.destroy();
    if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
  });

  /** What deploy/kubernetes/catga-entrypoint.sh gives each pod: ordinal 0 starts the cluster, the others join. */
  function pod(ordinal: number): NodeProcess {
    const id = PODS[ordinal]!;
    const cluster: Record<string, string> =
      ordinal === 0 ? { CATGA_MEMBERS: `${id}=${id}:${PORT}` } : { CATGA_JOIN: PODS.slice(0, ordinal).map((p) => `${p}:${PORT}`).join(',') };
    const p = new NodeProcess(
      id,
      {
        CATGA_NODE_ID: id,
        ...cluster,
        CATGA_ADVERTISE: `${id}:${PORT}`,
        CATGA_LISTEN_HOST: '0.0.0.0',
        CATGA_DATA_DIR: join(dataRoot, id),
        CATGA_SECRET: 'statefulset-test-secret',
        CATGA_QUIET: '1',
      },
      (command, args) => lab.wrap(id, command, args),
    );
    pods.set(id, p);
    return p;
  }

  const ready = (p: NodeProcess) =>
    waitUntil(`${p.id} ready`, 20_000, async () => {
      const r = await p.request<ProbesResult>({ op: 'probes' });
      return r.ready.status === 'up' ? r : undefined;
    });

  test('pods start one after another, each once the previous is ready, and end as three voters', async () => {
    for (let i = 0; i < PODS.length; i++) {
      const p = pod(i);
      await p.start();
      // Live at once: liveness does not wait for a leader.
      expect((await p.request<ProbesResult>({ op: 'probes' })).live.status).toBe('up');
      await ready(p);
    }
    await waitUntil('three voters on every pod', 20_000, async () => {
      const seen = await Promise.all(
        [...pods.values()].map(async (p) =>
          (await p.request<{ id: string; membership: string }[]>({ op: 'members' }))
            .map((m) => `${m.id}:${m.membership}`)
            .sort()
            .join(','),
        ),
      );
      return seen.every((s) => s === 'node-0:voter,node-1:voter,node-2:voter') ? true : undefined;
    });
    for (const p of pods.values()) await p.request({ op: 'put', key: `from-${p.id}`, value: p.id });
  });

  test('node-2 restarts with a new IP under the same name: the others resolve the name again and it rejoins under its id', async () => {
    const p = pods.get('node-2')!;
    await p.signal('SIGKILL');
    const moved = lab.moveAddress('node-2');
    expect(moved).not.toBe(`${lab.subnet}.3`);
    await p.start();
    await ready(p);
    await p.request({ op: 'put', key: 'after-move', value: 1 });
    const r = await p.request<ReadKeysResult>({ op: 'readKeys', keys: ['from-node-0', 'from-node-1', 'from-node-2', 'after-move'], consistency: 'linearizable' });
    expect(r.missing).toEqual([]);
    // The leader replicates to node-2 at its new address: node-2 stays a voter and in contact.
    const leader = await waitUntil('a leader', 10_000, async () => {
      for (const x of pods.values()) {
        const s = await x.status();
        if (s.isLeader) return s;
      }
      return undefined;
    });
    const seen = await waitUntil('the leader in contact with node-2', 10_000, async () => {
      const s = await pods.get(leader.nodeId)!.status();
      const m = s.members.find((x) => x.id === 'node-2');
      return m && m.lastContactMs !== null && m.lastContactMs < 1000 ? m : undefined;
    });
    expect(seen.membership).toBe('voter');
  });
});
