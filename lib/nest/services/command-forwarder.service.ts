import { Inject, Injectable, Logger, type OnApplicationBootstrap, type Type } from '@nestjs/common';
import { DiscoveryService, ModuleRef } from '@nestjs/core';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { LeaderForwarding, type ForwardedRun } from '../../cluster/leader-forwarding.js';
import { CLUSTER_MODULE_OPTIONS } from '../cluster.module-definition.js';
import {
  CQRS_COMMAND_HANDLER_METADATA,
  CQRS_QUERY_HANDLER_METADATA,
  FORWARD_CHANNEL,
  FORWARD_TO_LEADER_METADATA,
} from '../constants.js';
import { encodeError, ErrorTypes, type EncodedError } from '../error-codec.js';
import type { ClusterModuleOptions, ForwardToLeaderOptions } from '../interfaces/cluster-module-options.interface.js';
import { fieldsOf, MessageRegistry, rebuild } from '../message-registry.js';
import { CLUSTER_METRICS, type NodeMetrics } from '../ops/node-metrics.js';

export { ForwardOutcomeUnknownException } from '../../cluster/errors.js';

type MessageKind = 'command' | 'query';

/**
 * Runs @ForwardToLeader handlers on the leader, at most once (LeaderForwarding): in place when this node holds the
 * lease, otherwise by sending the message (its registered name and fields) to the leader, which rebuilds a real
 * instance and executes it on its own bus. The forwarded instance is remembered: the decorator lets it through only
 * after the leader's lease is confirmed right before the handler, and never forwards it again.
 */
@Injectable()
export class CommandForwarder implements OnApplicationBootstrap {
  private readonly registry = new MessageRegistry();
  private readonly kinds = new Map<string, MessageKind>();
  private readonly errors: ErrorTypes;
  private readonly forwarding: LeaderForwarding;
  /** Messages rebuilt from a forward, with the run that admits them. */
  private readonly forwarded = new WeakMap<object, ForwardedRun>();
  private readonly requestTimeout: number;

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly discovery: DiscoveryService,
    private readonly moduleRef: ModuleRef,
    @Inject(CLUSTER_MODULE_OPTIONS) options: ClusterModuleOptions,
    @Inject(CLUSTER_METRICS) metrics: NodeMetrics | null,
  ) {
    this.errors = new ErrorTypes(options.errorTypes ?? [], options.logger ?? new Logger('CatgaCluster'));
    this.requestTimeout = options.requestTimeout ?? 5000;
    this.forwarding = new LeaderForwarding(cluster, {
      channel: FORWARD_CHANNEL,
      encodeError,
      decodeError: (wire, leaderId) => this.errors.rebuild(wire as EncodedError, leaderId),
      onRoundTrip: (name, outcome, seconds) => metrics?.forwardSettled(this.kinds.get(name) ?? 'command', outcome, seconds),
    });
    this.forwarding.handle((run) => this.serve(run));
  }

  /** Learns every message class whose handler forwards, so the leader can rebuild what followers send. */
  onApplicationBootstrap(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const handler = wrapper.metatype as Type<object> | null;
      if (!handler || typeof handler !== 'function') continue;
      const options = Reflect.getMetadata(FORWARD_TO_LEADER_METADATA, handler) as ForwardToLeaderOptions | undefined;
      if (!options) continue;
      const command = Reflect.getMetadata(CQRS_COMMAND_HANDLER_METADATA, handler) as Type<object> | undefined;
      const query = Reflect.getMetadata(CQRS_QUERY_HANDLER_METADATA, handler) as Type<object> | undefined;
      const message = command ?? query;
      if (!message) {
        throw new Error(`@ForwardToLeader() on ${handler.name}: put it on a @CommandHandler() or @QueryHandler() class`);
      }
      const name = options.name ?? message.name;
      this.registry.register(name, message, command ? 'command' : 'query');
      this.kinds.set(name, command ? 'command' : 'query');
    }
  }

  /** Called by the decorator in place of the handler: runs it here with the lease, or on the leader. */
  run(message: object, runLocal: (m: object) => Promise<unknown>, options: ForwardToLeaderOptions): Promise<unknown> {
    const forwarded = this.forwarded.get(message);
    if (forwarded) {
      forwarded.admit(); // throws (and the sender is told "not run") unless this node still holds the lease
      return runLocal(message);
    }
    const cls = message.constructor as Type<object>;
    const name = this.registry.nameOf(cls) ?? options.name ?? cls.name;
    return this.forwarding.run(name, fieldsOf(message), () => runLocal(message), options.timeout ?? this.requestTimeout);
  }

  /** On the leader: rebuilds the message and runs it on the local bus. */
  private serve(run: ForwardedRun): Promise<unknown> {
    const cls = this.registry.classOf(run.name);
    const kind = this.kinds.get(run.name);
    if (!cls || !kind) {
      run.refuse(
        `"${run.name}" is not known on ${this.cluster.nodeId}: decorate its handler with @ForwardToLeader() ` +
          `(with the same name option on every node) and import the handler's module in every node's app`,
      );
    }
    const message = rebuild(cls, run.payload);
    this.forwarded.set(message, run);
    return kind === 'command'
      ? this.moduleRef.get(CommandBus, { strict: false }).execute(message)
      : this.moduleRef.get(QueryBus, { strict: false }).execute(message);
  }
}
