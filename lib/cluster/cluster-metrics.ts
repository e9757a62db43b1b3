import type { RaftStorage } from '../storage/raft-storage.js';
import type { Proposer } from './cluster-store.js';

/**
 * Where a node reports what it times and counts while it works. Plain TypeScript, so the cluster needs no metrics
 * library; the Nest module feeds these to prom-client.
 */
export interface ClusterMetrics {
  /** A durable write finished: one Ready's entries and hard state ('append': write + one fsync), or a snapshot. */
  storageSynced(op: 'append' | 'snapshot', seconds: number): void;
  /** A proposal made on this node settled: committed and applied (ok), or failed. `module`: kv, lock, event, task. */
  proposalSettled(module: string, ok: boolean, seconds: number): void;
}

/** The storage the runtime is given, with every durable write timed. */
export function timedStorage(storage: RaftStorage, metrics: ClusterMetrics): RaftStorage {
  const timed = async (op: 'append' | 'snapshot', write: () => Promise<void>) => {
    const t0 = performance.now();
    await write();
    metrics.storageSynced(op, (performance.now() - t0) / 1000);
  };
  return {
    open: () => storage.open(),
    persist: (batch) => timed('append', () => storage.persist(batch)),
    ...(storage.writeSnapshotImage && { writeSnapshotImage: (snapshot) => timed('snapshot', () => storage.writeSnapshotImage!(snapshot)) }),
    saveSnapshot: (snapshot) => timed('snapshot', () => storage.saveSnapshot(snapshot)),
    close: () => storage.close(),
  };
}

/** The proposer every write goes through (store, locks, events, task ledger), with each proposal counted and timed. */
export function countedProposer(proposer: Proposer, metrics: ClusterMetrics): Proposer {
  return {
    async propose(module, command, options) {
      const t0 = performance.now();
      try {
        const result = await proposer.propose(module, command, options);
        metrics.proposalSettled(module, true, (performance.now() - t0) / 1000);
        return result;
      } catch (e) {
        metrics.proposalSettled(module, false, (performance.now() - t0) / 1000);
        throw e;
      }
    },
  };
}
