import { randomUUID } from 'node:crypto';
import type { Clock } from '../../io/clock.js';
import { systemTimers } from '../../io/clock.js';
import { NodeDisk } from '../../storage/node-disk.js';
import { NumberFile } from '../../storage/number-file.js';
import { formatAddress } from '../../transport/member-address.js';
import { TcpNetwork } from '../../transport/tcp-network.js';
import { ClusterCoordinator } from '../cluster-coordinator.js';
import type { ClusterLogger } from '../logger.js';
import type { ResolvedClusterOptions, ResolvedEtcdBackend } from '../options.js';
import { connectEtcd, etcdClient } from './etcd-client.js';
import { EtcdBackend } from './etcd-backend.js';
import { EtcdKeys } from './keys.js';

/**
 * In the dataDir: the index (an etcd revision) of the last cluster event this node delivered. Not the embedded
 * backend's file: its log indexes mean nothing here, and a node moved between backends must not skip events.
 */
const EVENT_CURSOR_FILE = 'etcd-events.cursor';

/**
 * Starts a node on the etcd backend: connects to etcd (failing with a clear message on bad hosts, TLS or
 * credentials), opens the forwarding port, registers the node, and campaigns.
 */
export async function createEtcdCluster(
  o: ResolvedClusterOptions,
  b: ResolvedEtcdBackend,
  d: { readonly clock: Clock; readonly logger: ClusterLogger },
): Promise<ClusterCoordinator> {
  const keys = new EtcdKeys(b.prefix);
  const connect = { hosts: b.hosts, auth: b.auth, tls: b.tls, requestTimeoutMs: o.requestTimeout };
  const client = await connectEtcd(connect, `${b.prefix}probe`);
  const address = formatAddress(o.self);
  const network = new TcpNetwork({
    nodeId: o.nodeId,
    members: [o.self],
    secret: o.secret,
    tls: o.tls,
    maxFrameBytes: o.maxFrameBytes,
    listenHost: o.listenHost,
    // Nodes of another prefix (another cluster on the same etcd) are refused in the handshake.
    clusterName: `etcd:${b.prefix}`,
    bootstrap: '',
    logger: d.logger,
  });
  const eventCursor = new NumberFile(new NodeDisk(o.dataDir), EVENT_CURSOR_FILE);
  const backend = new EtcdBackend({
    nodeId: o.nodeId,
    address,
    client,
    keys,
    hosts: b.hosts,
    clientFor: (url) => etcdClient({ ...connect, hosts: [url] }),
    network,
    clientId: randomUUID(),
    clock: d.clock,
    timers: systemTimers,
    logger: d.logger,
    wallClock: () => Date.now(),
    electionTimeoutMs: o.electionTimeout,
    requestTimeoutMs: o.requestTimeout,
    eventRetention: o.eventRetention,
    eventCursor,
  });
  const coordinator = new ClusterCoordinator({ backend, eventCursor });
  try {
    await coordinator.start();
  } catch (e) {
    await coordinator.stop().catch(() => undefined);
    client.close();
    throw e;
  }
  d.logger.log(`node ${o.nodeId} started on etcd ${b.hosts.join(', ')} (prefix ${b.prefix}); takes forwarded commands at ${address}`);
  return coordinator;
}
