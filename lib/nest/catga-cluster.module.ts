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
import {
  CLUSTER_ASYNC_OPTIONS_TYPE,
  CLUSTER_MODULE_OPTIONS,
  CLUSTER_OPTIONS_TYPE,
  ClusterConfigurableModule,
} from './cluster.module-definition.js';
import type { ClusterModuleOptions } from './interfaces/cluster-module-options.interface.js';
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
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: ClusterCoordinator,
      inject: [CLUSTER_MODULE_OPTIONS],
      useFactory: (options: ClusterModuleOptions) => createCluster({ ...options, logger: options.logger ?? new Logger('CatgaCluster') }),
    },
    CommandForwarder,
    ClusterEventBridge,
    SingletonTaskRunner,
  ],
  exports: [ClusterCoordinator, CommandForwarder],
})
export class CatgaClusterModule extends ClusterConfigurableModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('CatgaCluster');

  constructor(
    private readonly cluster: ClusterCoordinator,
    @Inject(CLUSTER_MODULE_OPTIONS) private readonly options: ClusterModuleOptions,
  ) {
    super();
  }

  static override forRoot(options: typeof CLUSTER_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }

  static override forRootAsync(options: typeof CLUSTER_ASYNC_OPTIONS_TYPE): DynamicModule {
    return super.forRootAsync(options);
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
  }
}
