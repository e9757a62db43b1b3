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
import { ClusterOptionsError } from '../cluster/options.js';
import {
  CLUSTER_ASYNC_OPTIONS_TYPE,
  CLUSTER_MODULE_OPTIONS,
  CLUSTER_OPTIONS_TYPE,
  ClusterConfigurableModule,
} from './cluster.module-definition.js';
import type { ClusterModuleOptions, ClusterRouteOptions } from './interfaces/cluster-module-options.interface.js';
import { ClusterHealthIndicator } from './ops/cluster-health.indicator.js';
import { ClusterStatusService } from './ops/cluster-status.service.js';
import { CLUSTER_ROUTES, opsControllers, resolveRoutes, ROUTE_OPTION_KEYS, type ResolvedRoutes } from './ops/ops-routes.js';
import { CLUSTER_METRICS, type NodeMetrics } from './ops/node-metrics.js';
import { createNodeMetrics } from './ops/prometheus-metrics.js';
import { ClusterEventBridge } from './services/cluster-event-bridge.service.js';
import { CommandForwarder } from './services/command-forwarder.service.js';
import { SingletonTaskRunner } from './services/singleton-task-runner.service.js';

/**
 * Turns this app instance into a member of a Raft cluster. Global by default, so ClusterCoordinator and the
 * decorators work in every module.
 *
 *   CatgaClusterModule.forRoot({ nodeId, members, dataDir, secret })
 *   CatgaClusterModule.forRoot()            // CATGA_* environment, or a single-member cluster for development
 *   CatgaClusterModule.forRootAsync({ imports, inject, useFactory })
 *
 * It also serves GET /cluster/status (JSON) and /cluster (a live page), provides ClusterHealthIndicator, and feeds
 * catga_* metrics to prom-client when that is installed; see ClusterRouteOptions and the `metrics` option.
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
        const cluster = await createCluster({ ...options, logger: options.logger ?? new Logger('CatgaCluster') }, metrics ? { metrics } : {});
        metrics?.attach(cluster);
        return cluster;
      },
    },
    CommandForwarder,
    ClusterEventBridge,
    SingletonTaskRunner,
    ClusterStatusService,
    ClusterHealthIndicator,
  ],
  exports: [ClusterCoordinator, CommandForwarder, ClusterHealthIndicator, ClusterStatusService],
})
export class CatgaClusterModule extends ClusterConfigurableModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('CatgaCluster');

  constructor(
    private readonly cluster: ClusterCoordinator,
    @Inject(CLUSTER_MODULE_OPTIONS) private readonly options: ClusterModuleOptions,
    @Inject(CLUSTER_METRICS) private readonly metrics: NodeMetrics | null,
  ) {
    super();
  }

  static override forRoot(options: typeof CLUSTER_OPTIONS_TYPE & ClusterRouteOptions = {}): DynamicModule {
    const { statusPath, pagePath, metricsPath, ...rest } = options;
    return withRoutes(super.forRoot(rest), { statusPath, pagePath, metricsPath });
  }

  static override forRootAsync(options: typeof CLUSTER_ASYNC_OPTIONS_TYPE & ClusterRouteOptions): DynamicModule {
    const { statusPath, pagePath, metricsPath, ...rest } = options;
    return withRoutes(super.forRootAsync(rest), { statusPath, pagePath, metricsPath });
  }

  /** Waits (bounded) for a leader, so the app reports ready as part of a working cluster. */
  async onApplicationBootstrap(): Promise<void> {
    const timeout = this.options.startupTimeout ?? 10_000;
    if (timeout <= 0) return;
    try {
      const leader = await this.cluster.waitForLeader({ timeout });
      const who = leader === this.cluster.nodeId ? 'this node leads' : `the leader is ${leader}`;
      this.logger.log(`cluster ready: ${who} (term ${this.cluster.term}; members ${this.cluster.members.map((m) => m.id).join(', ')})`);
    } catch {
      this.logger.warn(
        `no leader after ${timeout} ms; starting anyway. Commands wait for one; check that a majority of members ` +
          `(${this.cluster.members.map((m) => `${m.id}@${m.address}`).join(', ')}) can reach each other and share the secret`,
      );
    }
  }

  /** A leader hands over before closing, so writes pause for a round trip rather than an election. */
  async onApplicationShutdown(): Promise<void> {
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
  const misplaced = ROUTE_OPTION_KEYS.filter((k) => k in options);
  if (misplaced.length > 0) {
    throw new ClusterOptionsError(
      `catga-cluster option ${misplaced.join(', ')}: expected in forRootAsync({ ... }) itself, not returned by useFactory (Nest fixes routes before factories run)`,
    );
  }
  return options;
}
