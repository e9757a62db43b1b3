import { randomUUID } from 'node:crypto';
import { FileStorage } from '../storage/file-storage.js';
import { MemoryStorage } from '../storage/memory-storage.js';
import { NodeDisk } from '../storage/node-disk.js';
import { NumberFile } from '../storage/number-file.js';
import { TcpNetwork } from '../transport/tcp-network.js';
import { formatAddress, type MemberAddress } from '../transport/member-address.js';
import { ClusterCoordinator } from './cluster-coordinator.js';
import { ClusterMembership } from './cluster-membership.js';
import { countedProposer, timedStorage, type ClusterMetrics } from './cluster-metrics.js';
import { LogProposer, LogStore } from './cluster-store.js';
import { systemClock, systemTimers, type Clock } from '../io/clock.js';
import { type Network } from '../io/network.js';
import type { ClusterLogger } from './logger.js';
import { MemoryCursor } from './memory-cursor.js';
import { ClusterOptionsError, resolveClusterOptions, type ClusterOptions, type ResolvedClusterOptions } from './options.js';
import { RaftRuntime } from './raft-runtime.js';
import { RequestRouter } from './request-handler.js';
import { SnapshotExporter } from './snapshot-export.js';
import { SoloNetwork } from './solo-network.js';
import { ClusterStateMachine } from './state/cluster-state-machine.js';

/** In the dataDir: the index of the last cluster event this node delivered. */
const EVENT_CURSOR_FILE = 'events.cursor';

function consoleLogger(nodeId: string): ClusterLogger {
  const p = `[catga ${nodeId}]`;
  return {
    log: (m) => console.log(`${p} ${m}`),
    warn: (m) => console.warn(`${p} ${m}`),
    error: (m) => console.error(`${p} ${m}`),
  };
}

/**
 * The static member list in one canonical form, compared in the handshake; '' for a node that joins by seed. Ids and
 * roles only: they decide who votes. Addresses may differ from node to node for the same member (a host name here, an
 * IP there, a proxy), and the handshake checks the peer's id at every dial anyway.
 */
function bootstrapList(members: readonly MemberAddress[]): string {
  return members
    .map((m) => `${m.id}${m.role === 'learner' ? '/learner' : ''}`)
    .sort()
    .join(',');
}

/**
 * @internal Seams, not part of the public API (not exported from lib/index.ts): the chaos test runs nodes whose
 * monotonic clock runs at a skewed rate (entry times, lock leases, stay on the machine's wall clock); the Nest module
 * plugs in its metrics.
 */
export interface ClusterInternals {
  readonly clock?: Clock;
  /** Receives fsync and proposal timings: the Nest module passes its prom-client metrics here. */
  readonly metrics?: ClusterMetrics;
  /** Hands over the Raft runtime: the benchmark node takes snapshots on demand with it. */
  readonly onRuntime?: (runtime: RaftRuntime) => void;
}

/**
 * Starts this node: recovers its dataDir, opens the cluster port, joins the others. Plain TypeScript, no Nest needed:
 *
 *   const cluster = await createCluster({ nodeId: 'node1', members: [...], dataDir: './data/node1', secret });
 *   await cluster.waitForLeader();
 *   await cluster.store.put('greeting', 'hello');
 *   await cluster.stop();
 */
export async function createCluster(options: ClusterOptions = {}, internals: ClusterInternals = {}): Promise<ClusterCoordinator> {
  const o: ResolvedClusterOptions = resolveClusterOptions(options);
  const clock = internals.clock ?? systemClock;
  const logger = options.logger ?? consoleLogger(o.nodeId);
  if (o.ignoredEnv.length > 0) {
    logger.warn(`${o.ignoredEnv.join(', ')} set but not read: the options were given in code; add fromEnv: true to read them (code wins)`);
  }
  if (o.networked && o.secret === undefined && !o.tls) {
    logger.warn('running WITHOUT a cluster secret (insecure: true): any process that reaches the cluster port can act as a member');
  }
  if (o.backend.type === 'etcd') {
    // Loaded only when used: the embedded backend never needs the etcd client (an optional peer dependency).
    const etcd = await import('./etcd/create-etcd.js').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'MODULE_NOT_FOUND' && /'(etcd3|cockatiel)'/.test(e.message)) {
        throw new ClusterOptionsError(`catga-cluster option backend: type 'etcd' needs the etcd client; install it with: npm install etcd3 cockatiel`);
      }
      throw e;
    });
    return etcd.createEtcdCluster(o, o.backend, { clock, logger });
  }
  const tcp = !o.networked
    ? null
    : new TcpNetwork({
        nodeId: o.nodeId,
        members: o.members.length > 0 ? o.members : [o.self],
        secret: o.secret,
        tls: o.tls,
        maxFrameBytes: o.maxFrameBytes,
        listenHost: o.listenHost,
        bootstrap: bootstrapList(o.members),
        logger,
      });
  const network: Network = tcp ?? new SoloNetwork();
  const { metrics } = internals;
  const disk = o.storage === 'file' ? new NodeDisk(o.dataDir) : null;
  const baseStorage = disk ? new FileStorage(disk, { logger }) : new MemoryStorage();
  const stateMachine = new ClusterStateMachine([], { eventRetention: o.eventRetention });
  const wallClock = () => Date.now();
  let router!: RequestRouter;
  const runtime = new RaftRuntime(
    {
      nodeId: o.nodeId,
      membership: { members: o.members.map((m) => ({ id: m.id, address: formatAddress(m), role: m.role ?? 'voter' })) },
      tickMs: o.tickMs,
      electionTick: o.electionTick,
      heartbeatTick: o.heartbeatTick,
      compactionThreshold: o.compactionThreshold,
      requestTimeoutMs: o.requestTimeout,
    },
    {
      storage: metrics ? timedStorage(baseStorage, metrics) : baseStorage,
      network,
      clock,
      timers: systemTimers,
      random: Math.random,
      stateMachine,
      logger,
      onCall: (from, payload) => router.handle(from, payload),
    },
  );
  internals.onRuntime?.(runtime);
  router = new RequestRouter(runtime, wallClock);
  router.snapshots = new SnapshotExporter({ runtime, stateMachine, timers: systemTimers, requestTimeoutMs: o.requestTimeout }).handle;
  const clientId = randomUUID();
  const logProposer = new LogProposer({
    runtime,
    network,
    clock,
    timers: systemTimers,
    wallClock,
    clientId,
    requestTimeoutMs: o.requestTimeout,
  });
  const proposer = metrics ? countedProposer(logProposer, metrics) : logProposer;
  const membership = new ClusterMembership({
    runtime,
    network,
    clock,
    timers: systemTimers,
    logger,
    electionTimeoutMs: o.electionTimeout,
    requestTimeoutMs: o.requestTimeout,
    targetVoters: o.targetVoters,
    autoRemoveAfterMs: o.autoRemoveAfter,
    self: { address: formatAddress(o.self), role: o.role },
    join: o.join,
    localAddresses: new Map(o.members.map((m) => [m.id, formatAddress(m)])),
    wallClock,
  });
  const coordinator = new ClusterCoordinator({
    runtime,
    network,
    router,
    stateMachine,
    proposer,
    store: new LogStore(proposer, runtime, stateMachine, o.requestTimeout),
    clock,
    timers: systemTimers,
    membership,
    leaveOnShutdown: o.leaveOnShutdown,
    electionTimeoutMs: o.electionTimeout,
    clientId,
    wallClock,
    eventCursor: disk ? new NumberFile(disk, EVENT_CURSOR_FILE) : new MemoryCursor(),
    logger,
    ...(tcp && { connectedPeers: () => new Set(Object.entries(tcp.stats().peers).flatMap(([id, p]) => (p.connected ? [id] : []))) }),
  });
  await coordinator.start();
  const members = coordinator.members;
  const how =
    members.length === 0
      ? `joining through ${o.join.join(', ')}`
      : members.length === 1 && members[0]!.isSelf
        ? `single member, leads at once${tcp ? `; others may join at ${formatAddress(o.self)}` : ''}`
        : `members ${members.map((m) => `${m.id}${m.membership === 'learner' ? ' (learner)' : ''}`).join(', ')}`;
  logger.log(`node ${o.nodeId} started (${how}; ${disk ? `dataDir ${o.dataDir}` : 'in memory, nothing is kept'})`);
  return coordinator;
}
