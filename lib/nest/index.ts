export { CatgaClusterModule } from './catga-cluster.module.js';
export { CLUSTER_MODULE_OPTIONS } from './cluster.module-definition.js';
export { ForwardToLeader } from './decorators/forward-to-leader.decorator.js';
export { LeaderOnly } from './decorators/leader-only.decorator.js';
export { ClusterEvent } from './decorators/cluster-event.decorator.js';
export { SingletonTask } from './decorators/singleton-task.decorator.js';
export type { LeaderTask, SingletonTaskOptions } from './decorators/singleton-task.types.js';
export { eventIndex } from './services/cluster-event-bridge.service.js';
export { ClusterEventsMissed } from './services/cluster-events-missed.js';
export { ClusterError } from './decorators/cluster-error.decorator.js';
export { RemoteHandlerError } from './error-codec.js';
export { ClusterExceptionFilter } from './filters/cluster-exception.filter.js';
export type { ClusterErrorBody, ClusterErrorCode } from './filters/cluster-http-errors.js';
export {
  ClusterHealthIndicator,
  type ClusterHealthResult,
  type ClusterHealthDetails,
  type ClusterReadinessDetails,
} from './ops/cluster-health.indicator.js';
export { ClusterStatusService } from './ops/cluster-status.service.js';
export type { ClusterStatusReport, MemberReport } from './ops/status-report.js';
export type {
  ClusterModuleOptions,
  ClusterRouteOptions,
  ClusterMetricsOptions,
  MetricsRegistry,
  ClusterEventOptions,
  ForwardToLeaderOptions,
  LeaderOnlyOptions,
} from './interfaces/cluster-module-options.interface.js';
