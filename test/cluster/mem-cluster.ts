/**
 * N complete nodes in this process — RaftRuntime, ClusterStateMachine, RequestRouter, LogProposer, LogStore and
 * ClusterCoordinator, as createCluster wires them — on real timers and MemoryStorage, over an in-memory network whose
 * links can be cut one way or both and whose messages can be dropped by a rule. Each node's clock can be pushed
 * ahead, as a blocked event loop sees time when it wakes.
 */
import { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import { LogProposer, LogStore } from '../../lib/cluster/cluster-store.js';
import { systemTimers, type Clock } from '../../lib/io/clock.js';
import { CallTimeoutError, NotSentError, type InboundHandler, type Network } from '../../lib/io/network.js';
import { silentLogger, type ClusterLogger } from '../../lib/cluster/logger.js';
import { MemoryCursor } from '../../lib/cluster/memory-cursor.js';
import { RaftRuntime } from '../../lib/cluster/raft-runtime.js';
import { RequestRouter } from '../../lib/cluster/request-handler.js';
import { ClusterStateMachine } from '../../lib/cluster/state/cluster-state-machine.js';
import type { Message, NodeId } from '../../lib/raft/index.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';

export const TICK_MS = 10;
export const ELECTION_TICK = 15;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An in-memory network: links cut per direction, Raft messages dropped by `dropIf`. */
export class MemNetwork {
  private readonly handlers = new Map<NodeId, InboundHandler>();
  private readonly cuts = new Set<string>();
  dropIf: (m: Message) => boolean = () => false;

  cutOneWay(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
  }

  cut(a: NodeId, b: NodeId): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  isolate(id: NodeId, all: readonly NodeId[]): void {
    for (const o of all) if (o !== id) this.cut(id, o);
  }

  heal(): void {
    this.cuts.clear();
  }

  private up(from: NodeId, to: NodeId): boolean {
    return !this.cuts.has(`${from}>${to}`) && this.handlers.has(to);
  }

  endpoint(id: NodeId): Network {
    return {
      listen: async (h) => void this.handlers.set(id, h),
      sendRaft: (m) => {
        if (!this.up(id, m.to) || this.dropIf(m)) return;
        const copy = structuredClone(m);
        setImmediate(() => this.up(id, m.to) && this.handlers.get(m.to)!.raft(copy));
      },
      call: (to, payload, timeoutMs) => {
        if (!this.up(id, to)) return Promise.reject(new NotSentError(`${id} -> ${to}: no connection`));
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new CallTimeoutError(`no answer from ${to} within ${timeoutMs} ms`)), timeoutMs);
          void this.handlers
            .get(to)!
            .call(id, payload.slice())
            .then((r) => {
              if (!this.up(to, id)) return; // the answer is lost: the caller times out
              clearTimeout(timer);
              resolve(r.slice());
            }, reject);
        });
      },
      close: async () => void this.handlers.delete(id),
      setMembers: () => undefined, // every node reaches every other by id
      // Addresses here are 'mem:<id>'.
      callAddress(address, payload, timeoutMs) {
        return this.call(address.replace(/^mem:/, ''), payload, timeoutMs);
      },
    };
  }
}

export interface MemNode {
  readonly id: NodeId;
  readonly runtime: RaftRuntime;
  readonly sm: ClusterStateMachine;
  readonly store: LogStore;
  readonly cluster: ClusterCoordinator;
  /** Pushes this node's clock ahead by `ms`, as a process whose event loop was blocked sees time on waking. */
  jump(ms: number): void;
}

export interface MemClusterOptions {
  readonly ids?: readonly NodeId[];
  readonly requestTimeoutMs?: number;
  readonly compactionThreshold?: number;
  readonly eventRetention?: number;
  /** Nodes that start with an empty membership (waiting to be added, at address 'mem:<id>'). */
  readonly spares?: readonly NodeId[];
  /** Each node's logger (default: silent). */
  readonly logger?: (id: NodeId) => ClusterLogger;
  /** Nodes whose graceful stop removes them from the membership. */
  readonly leaveOnShutdown?: readonly NodeId[];
}

export async function startMemCluster(o: MemClusterOptions = {}) {
  const ids = o.ids ?? ['a', 'b', 'c'];
  const requestTimeoutMs = o.requestTimeoutMs ?? 1000;
  const net = new MemNetwork();
  const nodes = new Map<NodeId, MemNode>();
  const storages = new Map<NodeId, MemoryStorage>();
  const cursors = new Map<NodeId, MemoryCursor>();

  const boot = async (id: NodeId): Promise<MemNode> => {
    let offset = 0;
    const clock: Clock = { now: () => performance.now() + offset };
    const storage = storages.get(id) ?? new MemoryStorage();
    storages.set(id, storage);
    const cursor = cursors.get(id) ?? new MemoryCursor();
    cursors.set(id, cursor);
    const sm = new ClusterStateMachine([], { eventRetention: o.eventRetention });
    const network = net.endpoint(id);
    let router!: RequestRouter;
    const runtime = new RaftRuntime(
      { nodeId: id, membership: o.spares?.includes(id) ? { members: [] } : { members: ids.map((m) => ({ id: m, address: `mem:${m}`, role: 'voter' as const })) }, tickMs: TICK_MS, electionTick: ELECTION_TICK, heartbeatTick: 5, compactionThreshold: o.compactionThreshold ?? 100_000, requestTimeoutMs },
      { storage, network, clock, timers: systemTimers, random: Math.random, stateMachine: sm, logger: o.logger?.(id) ?? silentLogger, onCall: (f, p) => router.handle(f, p) },
    );
    router = new RequestRouter(runtime, Date.now);
    const clientId = `${id}@${Math.random().toString(36).slice(2)}`;
    const proposer = new LogProposer({ runtime, network, clock, timers: systemTimers, wallClock: Date.now, clientId, requestTimeoutMs });
    const store = new LogStore(proposer, runtime, sm, requestTimeoutMs);
    const cluster = new ClusterCoordinator({
      runtime,
      network,
      router,
      stateMachine: sm,
      proposer,
      store,
      clock,
      timers: systemTimers,
      electionTimeoutMs: ELECTION_TICK * TICK_MS,
      clientId,
      eventCursor: cursor,
      leaveOnShutdown: o.leaveOnShutdown?.includes(id),
    });
    await cluster.start();
    const node: MemNode = { id, runtime, sm, store, cluster, jump: (ms) => void (offset += ms) };
    nodes.set(id, node);
    return node;
  };

  await Promise.all([...ids, ...(o.spares ?? [])].map(boot));
  const node = (id: NodeId): MemNode => {
    const n = nodes.get(id);
    if (!n) throw new Error(`${id} is not running`);
    return n;
  };
  const until = async <T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
      await sleep(5);
    }
  };
  return {
    net,
    ids,
    node,
    until,
    /** The node that leads with a valid lease (among `among`), once there is one. */
    leader: (among: readonly NodeId[] = ids) => until('a leader with a lease', () => among.find((id) => nodes.get(id)?.runtime.hasValidLease())),
    /** Stops a node as a crash would (no hand-over); its storage and event cursor stay for restart(). */
    crash: async (id: NodeId) => {
      const n = nodes.get(id);
      nodes.delete(id);
      await n?.runtime.stop({ transfer: false });
    },
    restart: boot,
    /** A graceful stop of one node (hand-over, leaveOnShutdown). */
    stopNode: async (id: NodeId) => {
      const n = nodes.get(id);
      nodes.delete(id);
      await n?.cluster.stop();
    },
    stop: () => Promise.all([...nodes.values()].map((n) => n.cluster.stop())),
  };
}

/** The settled state of a promise, readable without waiting. */
export function track<T>(p: Promise<T>) {
  const s: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: Error } = { state: 'pending' };
  p.then(
    (v) => Object.assign(s, { state: 'resolved', value: v }),
    (e: Error) => Object.assign(s, { state: 'rejected', error: e }),
  );
  return s;
}
