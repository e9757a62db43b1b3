/**
 * `catga-cluster/testing`: seams for tests and benchmarks, not the API an app builds on (that is the root entry,
 * `catga-cluster`). The benchmarks in bench/ and the end-to-end test node (test/e2e/node-main.ts) take these from
 * here; anything else under dist/ is not importable from the package (package.json `exports`).
 *
 * No stability promise: these follow the internals they expose and may change in any release. Importing this entry
 * does not load Nest or reflect-metadata.
 */

// Options with their defaults and the CATGA_* environment applied, as `createCluster` sees them.
export { resolveClusterOptions, type ResolvedClusterOptions } from './cluster/options.js';
// `createCluster`'s second argument: a clock to skew (chaos tests) and a metrics sink.
export type { ClusterInternals } from './cluster/create-cluster.js';
export type { Clock } from './io/clock.js';
export type { ClusterMetrics } from './cluster/cluster-metrics.js';
// The lease length in ticks the Raft core derives from the election timeout and its clock-drift bound.
export { leaseTicksFor } from './raft/config.js';
export type { Entry, HardState, NodeId } from './raft/types.js';
// The durable log (WAL segments and snapshots in a dataDir) and the disk it writes through.
export { FileStorage, type FileStorageOptions, type StorageLogger } from './storage/file-storage.js';
export { NodeDisk, type NodeDiskOptions, type Durability, type IoMode } from './storage/node-disk.js';
// The WAL record encoding, for measuring what FileStorage writes.
export { encodeRecords, type WalRecord } from './storage/record.js';
