import {
  Inject,
  Logger,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ClusterCoordinator } from '../cluster/cluster-coordinator.js';
import { createCluster } from '../cluster/create-cluster.js';
import { clusterOptionsOf, ClusterOptionsError } from '../cluster/options.js';
import {
  CLUSTER_ASYNC_OPTIONS_TYPE,
  CLUSTER_MODULE_OPTIONS,
  CLUSTER_OPTIONS_TYPE,
  ClusterConfigurableModule,
} from './cluster.module-definition.js';
import type { ClusterModuleOptions, ClusterRouteOptions } from './interfaces/cluster-module-options.interface.js';
import { EXCEPTION_FILTER_PROVIDER } from './filters/exception-filter.provider.js';
import { checkModuleOptions, FACTORY_KEYS, FOR_ROOT_KEYS } from './module-options.schema.js';
import { ClusterHealthIndicator } from './ops/cluster-health.indicator.js';
import { ClusterStatusService } from './ops/cluster-status.service.js';
import { watchFirstLeader, type FirstLeaderWatch } from './ops/first-leader.js';
import { CLUSTER_ROUTES, opsControllers, resolveRoutes, ROUTE_OPTION_KEYS, splitRouteOptions, type ResolvedRoutes } from './ops/ops-routes.js';
import { CLUSTER_METRICS, type NodeMetrics } from './ops/node-metrics.js';
import { createNodeMetrics } from './ops/prometheus-metrics.js';
import { ClusterEventBridge } from './services/cluster-event-bridge.service.js';
import { CommandForwarder } from './services/command-forwarder.service.js';
import { SingletonTaskRunner } from './services/singleton-task-runner.service.js';

/** See ClusterModuleOptions.startupTimeout. */
const DEFAULT_STARTUP_TIMEOUT_MS = 10_000;
/** Bound on a single member's own election at bootstrap (it takes one fsync). */
const SOLO_ELECTION_WAIT_MS = 10_000;

/**
 * Turns this app instance into a member of a Raft cluster. Global by default, so ClusterCoordinator and the
 * decorators work in every module.
 *
 *   CatgaClusterModule.forRoot({ nodeId, members, dataDir, secret })
 *   CatgaClusterModule.forRoot()            // CATGA_* environment, or a single-member cluster for development
 *   CatgaClusterModule.forRootAsync({ imports, inject, useFactory })
 *
 * It also serves GET /cluster/health/ready and /live (probes: up or down), and on request (statusPath, pagePath,
 * behind opsGuard / opsAllowFrom) /cluster/status (JSON) and /cluster (a live page); provides ClusterHealthIndicator,
 * and feeds catga_* metrics to prom-client when that is installed; see ClusterRouteOptions and the `metrics` option.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: CLUSTER_METRICS,
      inject: [CLUSTER_MODULE_OPTIONS, CLUSTER_ROUTES],
      useFactory: (options: ClusterModuleOptions, routes: ResolvedRoutes) => createNodeMetrics(checkNoRouteOptions(options), routes.metrics !== null),
    },
    {
      provide: ClusterCoordinator,
      inject: [CLUSTER_MODULE_OPTIONS, CLUSTER_METRICS],
      useFactory: async (options: ClusterModuleOptions, metrics: NodeMetrics | null) => {
        const cluster = await createCluster({ ...clusterOptionsOf(options), logger: options.logger ?? new Logger('CatgaCluster') }, metrics ? { metrics } : {});
        metrics?.attach(cluster);
        return cluster;
      },
    },
    CommandForwarder,
    ClusterEventBridge,
    SingletonTaskRunner,
    ClusterStatusService,
    ClusterHealthIndicator,
    EXCEPTION_FILTER_PROVIDER,
  ],
  exports: [ClusterCoordinator, CommandForwarder, ClusterHealthIndicator, ClusterStatusService],
})
export class CatgaClusterModule extends ClusterConfigurableModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('CatgaCluster');
  private startup: FirstLeaderWatch | null = null;

  constructor(
    private readonly cluster: ClusterCoordinator,
    @Inject(CLUSTER_MODULE_OPTIONS) private readonly options: ClusterModuleOptions,
    @Inject(CLUSTER_METRICS) private readonly metrics: NodeMetrics | null,
  ) {
    super();
  }

  static override forRoot(options: typeof CLUSTER_OPTIONS_TYPE & ClusterRouteOptions = {}): DynamicModule {
    checkModuleOptions(options, FOR_ROOT_KEYS);
    const [routes, rest] = splitRouteOptions(options);
    return withRoutes(super.forRoot(rest), routes);
  }

  /**
   * A single-member cluster for unit tests: in memory (no files), reads no CATGA_* variable, opens no port, and leads
   * once the app is initialized; apps in parallel Jest workers cannot collide. Options override the test defaults.
   *
   *   Test.createTestingModule({ imports: [CqrsModule.forRoot(), CatgaClusterModule.forTest(), OrdersModule] })
   */
  static forTest(options: typeof CLUSTER_OPTIONS_TYPE & ClusterRouteOptions = {}): DynamicModule {
    return CatgaClusterModule.forRoot({ nodeId: 'test', storage: 'memory', fromEnv: false, ...options });
  }

  static override forRootAsync(options: typeof CLUSTER_ASYNC_OPTIONS_TYPE & ClusterRouteOptions): DynamicModule {
    const [routes, rest] = splitRouteOptions(options);
    return withRoutes(super.forRootAsync(rest), routes);
  }

  /**
   * Returns without waiting for a leader: `app.listen` must not depend on the other members, or pods started one at a
   * time (a Kubernetes StatefulSet) never get past the first. Readiness is the `/ready` probe's business; here the
   * first leader is logged when it appears, and a warning comes after `startupTimeout` if none has.
   */
  async onApplicationBootstrap(): Promise<void> {
    this.startup = watchFirstLeader(this.cluster, this.options.startupTimeout ?? DEFAULT_STARTUP_TIMEOUT_MS, {
      ready: (message) => this.logger.log(message),
      late: (message) => this.logger.warn(message),
    });
    // A node that is the only member elects itself within milliseconds, with no peer to wait for: waiting keeps it
    // leading once the app is up, which development setups and unit tests rely on. (A node joining by seed knows no
    // members yet and does not wait.)
    const members = this.cluster.members;
    if (members.length === 1 && members[0]!.isSelf) await this.cluster.waitForLeader({ timeout: SOLO_ELECTION_WAIT_MS }).catch(() => undefined);
  }

  /** A leader hands over before closing, so writes pause for a round trip rather than an election. */
  async onApplicationShutdown(): Promise<void> {
    this.startup?.stop(); // no log line, and no timer holding the process, after shutdown
    await this.cluster.stop();
    this.metrics?.detach();
  }
}

function withRoutes(definition: DynamicModule, routes: ClusterRouteOptions): DynamicModule {
  const resolved = resolveRoutes(routes);
  return {
    ...definition,
    providers: [...(definition.providers ?? []), { provide: CLUSTER_ROUTES, useValue: resolved }],
    controllers: [...(definition.controllers ?? []), ...opsControllers(resolved)],
  };
}

/** Route options returned by an async factory would be ignored silently (see ClusterRouteOptions): refuse them. */
function checkNoRouteOptions(options: ClusterModuleOptions): ClusterModuleOptions {
  checkModuleOptions(options, FACTORY_KEYS);
  const misplaced = ROUTE_OPTION_KEYS.filter((k) => k in options);
  if (misplaced.length > 0) {
    throw new ClusterOptionsError(
      `catga-cluster option ${misplaced.join(', ')}: expected in forRootAsync({ ... }) itself, not returned by useFactory (Nest fixes routes and their guards before factories run)`,
    );
  }
  return options;
}
