import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { EventBus, type IEvent, type IEventPublisher } from '@nestjs/cqrs';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import type { CommittedEvent } from '../../cluster/state/event-log-module.js';
import { clusterEventErrors, clusterEvents, isClusterEvent } from '../decorators/cluster-event.decorator.js';
import { copyOf } from '../../cluster/cluster-store.js';
import { fieldsOf, rebuild } from '../message-registry.js';
import { ClusterEventsMissed } from './cluster-events-missed.js';

const indexes = new WeakMap<object, number>();

/**
 * The log index a cluster event was committed at: the same on every node, so handlers can use it as an idempotency
 * key (delivery is at least once across restarts). Undefined for events that did not come through the cluster.
 */
export function eventIndex(event: object): number | undefined {
  return indexes.get(event);
}

/**
 * Connects @ClusterEvent classes to the Raft log. It wraps the EventBus publisher (the bus's extension point): a
 * cluster event is proposed instead of published; when committed, every node publishes it on its own bus, in log
 * order, so local @EventsHandler classes and sagas run exactly as for a local event. Other events pass through.
 *
 * Delivery (EventDelivery) starts once the application has bootstrapped, when every handler is registered: events
 * committed before then, and those a restart or snapshot would otherwise skip, arrive first, in order. "Delivered"
 * means EventBus.publish returned for that event (each handler's handle() was called); a crash after that and
 * before the cursor was saved delivers it again, so use eventIndex(event) to stay idempotent.
 */
@Injectable()
export class ClusterEventBridge implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('CatgaCluster');
  private inner: IEventPublisher | null = null;
  private readonly delivering = new WeakSet<object>();
  private bootstrapped = false;
  private handlersRegistered = false;
  private deliveryStarted = false;

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    if (clusterEventErrors.length > 0) throw new Error(clusterEventErrors.join('; '));
    let bus: EventBus;
    try {
      bus = this.moduleRef.get(EventBus, { strict: false });
    } catch {
      return; // no CqrsModule in this app: nothing to bridge
    }
    const inner = bus.publisher;
    this.inner = inner;
    const bridge: IEventPublisher = {
      publish: (event: IEvent, ...rest: unknown[]) =>
        isClusterEvent(event) && !this.delivering.has(event) ? this.propose(event) : inner.publish(event, ...(rest as [])),
    };
    if (inner.publishAll) {
      const publishAll = inner.publishAll.bind(inner);
      bridge.publishAll = (events: IEvent[], ...rest: unknown[]) => {
        const local = events.filter((e) => !isClusterEvent(e) || this.delivering.has(e));
        for (const e of events) if (!local.includes(e)) void this.propose(e);
        return publishAll(local, ...(rest as []));
      };
    }
    bus.publisher = bridge;
    // The bus drops its handlers in its onModuleDestroy, which may run before ours (module order decides) while the
    // node keeps applying entries until it stops: delivery ends first, so nothing applied later counts as delivered.
    const destroy = bus.onModuleDestroy.bind(bus);
    bus.onModuleDestroy = () => {
      this.cluster.stopEventDelivery();
      destroy();
    };
    // The CqrsModule registers the handlers in its own onApplicationBootstrap, which Nest may run before or after
    // ours (in import order): delivery starts once both have run, so no event reaches a bus without its handlers.
    const register = bus.register.bind(bus);
    bus.register = (handlers) => {
      register(handlers);
      this.handlersRegistered = true;
      this.startDelivery();
    };
  }

  /** Shutdown begins: events applied from now on are delivered after the next start. */
  onModuleDestroy(): void {
    this.cluster.stopEventDelivery();
  }

  /** Handlers are registered during bootstrap; deliveries (including the log replayed at start) wait for that. */
  onApplicationBootstrap(): void {
    this.bootstrapped = true;
    this.startDelivery();
  }

  /**
   * Starts delivery once this app has bootstrapped and the bus has its handlers, a turn later: sagas are registered
   * right after the handlers, in the same hook.
   */
  private startDelivery(): void {
    const inner = this.inner;
    if (!inner || !this.bootstrapped || !this.handlersRegistered || this.deliveryStarted) return;
    this.deliveryStarted = true;
    setImmediate(() =>
      this.cluster.deliverEvents({
        deliver: (e) => this.deliver(inner, e),
        missed: (gap) => inner.publish(new ClusterEventsMissed(gap.after, gap.upTo)),
      }),
    );
  }

  private propose(event: object): Promise<{ index: number }> {
    const name = clusterEvents.nameOf(event.constructor as never) ?? event.constructor.name;
    const p = this.cluster.publishEvent(name, fieldsOf(event));
    p.catch((e: Error) => this.logger.error(`cluster event ${name} was not published: ${e.message}`));
    return p;
  }

  private deliver(inner: IEventPublisher, e: CommittedEvent): void {
    const cls = clusterEvents.classOf(e.name);
    if (!cls) {
      this.logger.warn(`cluster event "${e.name}" (log index ${e.index}) has no @ClusterEvent class in this app; skipped`);
      return;
    }
    // A copy: the replicated state keeps the payload, and a handler changing the event must not change it.
    const event = rebuild(cls, copyOf(e.payload));
    indexes.set(event, e.index);
    this.delivering.add(event);
    inner.publish(event);
  }
}
