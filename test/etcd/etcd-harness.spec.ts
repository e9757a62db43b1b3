/** The etcd the backend's tests run against: three real members on free loopback ports, removed afterwards. */
import { existsSync } from 'node:fs';
import { startEtcd, type EtcdCluster } from '../support/etcd-cluster';

jest.setTimeout(60_000);

test('three etcd members agree, every member serves a write made through another, and destroy removes the data', async () => {
  const etcd: EtcdCluster = await startEtcd(3);
  try {
    await etcd.members[0]!.client.put('harness/k').value('v');
    for (const m of etcd.members) expect(await m.client.get('harness/k').string()).toBe('v');
    const ports = new Set(etcd.members.map((m) => new URL(m.clientUrl).port));
    expect(ports.size).toBe(3);
  } finally {
    await etcd.destroy();
  }
  expect(existsSync(etcd.dataRoot)).toBe(false);
});
