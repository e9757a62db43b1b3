import { randomUUID } from 'node:crypto';
import { FileStorage } from '../storage/file-storage.js';
import { NodeDisk } from '../storage/node-disk.js';
import { NumberFile } from '../storage/number-file.js';
import { TcpNetwork } from '../transport/tcp-network.js';
import { ClusterCoordinator } from './cluster-coordinator.js';
import { countedProposer, timedStorage, type ClusterMetrics } from './cluster-metrics.js';
import { ClusterStore, LogProposer } from './cluster-store.js';
import { systemClock, systemTimers, type Clock, type Network } from './io.js';
import type { ClusterLogger } from './logger.js';
import { resolveClusterOptions, type ClusterOptions, type ResolvedClusterOptions } from './options.js';
import { RaftRuntime } from './raft-runtime.js';
import { RequestRouter } from './request-handler.js';
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

function addressOf(m: { host: string; port: number }): string {
  return m.host.includes(':') ? `[${m.host}]:${m.port}` : `${m.host}:${m.port}`;
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
  if (o.members.length > 1 && o.secret === undefined && !o.tls) {
    logger.warn('running WITHOUT a cluster secret (insecure: true): any process that reaches the cluster port can act as a member');
  }
  const tcp =
    o.members.length === 1
      ? null
      : new TcpNetwork({
          nodeId: o.nodeId,
          members: o.members,
          secret: o.secret,
          tls: o.tls,
          maxFrameBytes: o.maxFrameBytes,
          listenHost: o.listenHost,
          logger,
        });
  const network: Network = tcp ?? new SoloNetwork();
  const { metrics } = internals;
  const disk = new NodeDisk(o.dataDir);
  const fileStorage = new FileStorage(disk, { logger });
  const stateMachine = new ClusterStateMachine([], { eventRetention: o.eventRetention });
  const wallClock = () => Date.now();
  let router!: RequestRouter;
  const runtime = new RaftRuntime(
    {
      nodeId: o.nodeId,
      voters: o.members.map((m) => m.id),
      tickMs: o.tickMs,
      electionTick: o.electionTick,
      heartbeatTick: o.heartbeatTick,
      compactionThreshold: o.compactionThreshold,
      requestTimeoutMs: o.requestTimeout,
    },
    {
      storage: metrics ? timedStorage(fileStorage, metrics) : fileStorage,
      network,
      clock,
      timers: systemTimers,
      random: Math.random,
      stateMachine,
      logger,
      onCall: (from, payload) => router.handle(from, payload),
    },
  );
  router = new RequestRouter(runtime, wallClock);
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
  const coordinator = new ClusterCoordinator({
    runtime,
    network,
    router,
    stateMachine,
    proposer,
    store: new ClusterStore(proposer, runtime, stateMachine, o.requestTimeout),
    clock,
    timers: systemTimers,
    members: o.members.map((m) => ({ id: m.id, address: addressOf(m) })),
    electionTimeoutMs: o.electionTimeout,
    clientId,
    wallClock,
    eventCursor: new NumberFile(disk, EVENT_CURSOR_FILE),
    logger,
    ...(tcp && { connectedPeers: () => new Set(Object.entries(tcp.stats().peers).flatMap(([id, p]) => (p.connected ? [id] : []))) }),
  });
  await coordinator.start();
  logger.log(
    `node ${o.nodeId} started (${o.members.length === 1 ? 'single member, leads at once' : `members ${o.members.map((m) => m.id).join(', ')}`}; dataDir ${o.dataDir})`,
  );
  return coordinator;
}
