import type { Type } from '@nestjs/common';
import { CLUSTER_EVENT_METADATA } from '../constants.js';
import type { ClusterEventOptions } from '../interfaces/cluster-module-options.interface.js';
import { MessageRegistry } from '../message-registry.js';

/** Every @ClusterEvent class in the process, by name; filled as classes are decorated. */
export const clusterEvents = new MessageRegistry();
/** A name clash found while decorating, reported at bootstrap (a decorator should not throw at import time). */
export const clusterEventErrors: string[] = [];

/**
 * Marks an event class as cluster-wide: `EventBus.publish` on any node commits it through Raft, and every node then
 * delivers it to its local handlers and sagas, in the same order everywhere. Events without it stay local.
 */
export function ClusterEvent(options: ClusterEventOptions = {}): ClassDecorator {
  return (target) => {
    const cls = target as unknown as Type<object>;
    const name = options.name ?? cls.name;
    Reflect.defineMetadata(CLUSTER_EVENT_METADATA, { name }, cls);
    try {
      clusterEvents.register(name, cls, 'event');
    } catch (e) {
      clusterEventErrors.push((e as Error).message);
    }
  };
}

export function isClusterEvent(event: unknown): event is object {
  return typeof event === 'object' && event !== null && Reflect.hasMetadata(CLUSTER_EVENT_METADATA, event.constructor);
}
