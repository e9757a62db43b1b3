import type { Etcd3 } from 'etcd3';
import type { EtcdView } from '../backend.js';
import { callOptions } from './etcd-client.js';
import type { RegisteredNode } from './etcd-nodes.js';

/** Every status call is bounded by this: a status page must answer while etcd does not. */
const STATUS_CALL_MS = 1000;

/**
 * What the status page shows of etcd: each endpoint asked on its own (a client bound to one host), which member leads
 * etcd's own Raft group, and the app nodes present with their leases' time left. All calls run at once, each bounded.
 */
export async function readEtcdView(
  client: Etcd3,
  hosts: readonly string[],
  /** A client bound to one endpoint, with the shared client's credentials (status is per member); kept by the caller. */
  clientFor: (url: string) => Etcd3,
  prefix: string,
  nodes: readonly RegisteredNode[],
  timeoutMs: number,
): Promise<EtcdView> {
  const ms = Math.min(timeoutMs, STATUS_CALL_MS);
  const names = client.cluster
    .memberList({}, callOptions(ms))
    .then((r) => new Map(r.members.map((m) => [m.ID, m.name])))
    .catch(() => new Map<string, string>());
  const ttls = Promise.all(nodes.map((n) => leaseTtl(client, n.leaseId, ms)));
  const endpoints = await Promise.all(
    hosts.map(async (url) => {
      const one = clientFor(url);
      try {
        const s = await one.maintenance.status(callOptions(ms));
        return {
          url,
          name: null as string | null,
          memberId: s.header.member_id,
          isLeader: s.leader === s.header.member_id,
          reachable: true,
          raftTerm: Number(s.raftTerm),
          revision: Number(s.header.revision),
          version: s.version,
        };
      } catch (e) {
        return { url, name: null, memberId: null, isLeader: false, reachable: false, raftTerm: null, revision: null, version: null, error: (e as Error).message };
      }
    }),
  );
  const [byId, left] = await Promise.all([names, ttls]);
  const named = endpoints.map((e) => ({ ...e, name: (e.memberId && byId.get(e.memberId)) || null }));
  return {
    prefix,
    endpoints: named,
    leaderEndpoint: named.find((e) => e.isLeader)?.url ?? null,
    nodes: nodes.map((n, i) => ({ id: n.id, address: n.address, leaseId: n.leaseId, ttlLeftS: left[i] ?? null })),
    checkedAt: Date.now(),
  };
}

async function leaseTtl(client: Etcd3, leaseId: string, timeoutMs: number): Promise<number | null> {
  try {
    const r = await client.leaseClient.leaseTimeToLive({ ID: leaseId, keys: false }, callOptions(timeoutMs));
    return Number(r.TTL) >= 0 ? Number(r.TTL) : null;
  } catch {
    return null;
  }
}
