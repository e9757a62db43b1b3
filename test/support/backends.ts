/**
 * The Nest, task, lock, event and forwarding specs run on both backends: `describe.each(BACKENDS)`. The etcd one is a
 * real 3-member etcd 3.4 on loopback, one per spec file (started on first use, removed after the file), and every
 * cluster started on it gets a prefix of its own, so clusters of one file never see each other's keys.
 * CATGA_BACKENDS=embedded (or etcd) runs one of them only.
 */
import { randomUUID } from 'node:crypto';
import type { ClusterCoordinator } from '../../lib/index.js';
import { EmbeddedBackend } from '../../lib/cluster/embedded/embedded-backend.js';
import type { EtcdBackend } from '../../lib/cluster/etcd/etcd-backend.js';
import { etcdHosts, startEtcd, type EtcdCluster } from './etcd-cluster.js';

export type BackendName = 'embedded' | 'etcd';

export const BACKENDS: readonly BackendName[] = (process.env.CATGA_BACKENDS ?? 'embedded,etcd')
  .split(',')
  .map((b) => b.trim())
  .filter((b): b is BackendName => b === 'embedded' || b === 'etcd');

let etcd: Promise<EtcdCluster> | null = null;

/** The spec file's etcd, started on first use; `afterAll(stopSharedEtcd)` removes it. */
export function sharedEtcd(): Promise<EtcdCluster> {
  etcd ??= startEtcd(3);
  return etcd;
}

export async function stopSharedEtcd(): Promise<void> {
  const e = etcd;
  etcd = null;
  if (e) await (await e).destroy();
}

/** The module options that pick `backend` for one cluster (a fresh prefix on etcd); {} for the embedded one. */
export async function backendOptions(backend: BackendName): Promise<{ backend?: { type: 'etcd'; hosts: string[]; prefix: string } }> {
  if (backend === 'embedded') return {};
  return { backend: { type: 'etcd', hosts: etcdHosts(await sharedEtcd()), prefix: `t/${randomUUID()}/` } };
}

/**
 * Stops a node as a crash looks to the others, while its app stays up and cut off: the embedded runtime stops without a
 * handover; on etcd the node stops keeping its session lease alive and never revokes it, so etcd expires it.
 */
export async function crashNode(c: ClusterCoordinator): Promise<void> {
  if (c.backend.kind === 'etcd') return (c.backend as EtcdBackend).simulateCrash();
  if (!(c.backend instanceof EmbeddedBackend)) throw new Error(`crashNode: unknown backend ${c.backend.kind}`);
  await c.backend.runtime.stop({ transfer: false });
}

/** How long a failover may take: an election on the embedded group, the session lease's TTL (and a margin) on etcd. */
export function failoverMs(backend: BackendName): number {
  return backend === 'etcd' ? 8000 : 3000;
}
