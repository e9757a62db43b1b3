import 'reflect-metadata';

export * from './nest/index.js';
export { ClusterCoordinator, type ClusterMember, type MemberView, type MemberList, type LeadershipState, type LeadershipChange } from './cluster/cluster-coordinator.js';
export type { NewMember, MembershipEvent } from './cluster/cluster-membership.js';
export type { MemberRole } from './raft/membership.js';
export { createCluster } from './cluster/create-cluster.js';
export type { StoreEntry, WriteResult, CasResult, ReadConsistency } from './cluster/cluster-store.js';
export type { ClusterStore, ClusterLocks, BackendKind, BackendStatus, EtcdView } from './cluster/backend.js';
export type { ClusterOptions, BackendOptions, EtcdBackendOptions } from './cluster/options.js';
export { ClusterOptionsError } from './cluster/options.js';
export type { ClusterLogger } from './cluster/logger.js';
export type { RuntimeStatus, MemberStatus } from './cluster/backend.js';
export {
  NotLeaderException,
  NoLeaderException,
  ProposalDroppedError,
  ProposalOutcomeUnknownError,
  ClusterStoppedError,
  ForwardOutcomeUnknownException,
  MembershipChangeError,
} from './cluster/errors.js';
export { LockTimeoutException, LockLostException } from './cluster/lock-errors.js';
export { DistributedLock, type LockAcquireOptions } from './cluster/distributed-lock.js';
export { TaskLedger, type TaskRun, type TaskOutcome, type TaskRunContext, type TaskStartResult, type FireOutcome } from './cluster/task-ledger.js';
export type { EventGap, EventSink } from './cluster/event-delivery.js';
export type { CommittedEvent } from './cluster/state/event-log-module.js';
