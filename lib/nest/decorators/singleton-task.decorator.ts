import { Inject, Logger, Optional, type Type } from '@nestjs/common';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { COORDINATOR_PROPERTY } from '../constants.js';
import { runSingletonFire } from '../services/singleton-fire.js';
import { copyMetadata, fireTimeOf } from './schedule-metadata.js';
import type { SingletonTaskOptions } from './singleton-task.types.js';

/** Class metadata of a LeaderTask provider. */
export const SINGLETON_TASK_METADATA = 'catga:singletonTask';

export interface SingletonTaskInfo {
  readonly name: string;
  readonly options: SingletonTaskOptions;
}

export interface SingletonMethodInfo extends SingletonTaskInfo {
  /** The undecorated method. */
  readonly original: (...args: unknown[]) => unknown;
}

const methods = new WeakMap<object, SingletonMethodInfo>();

/** What @SingletonTask() recorded about a wrapped method, if `fn` is one. */
export function singletonMethodOf(fn: unknown): SingletonMethodInfo | undefined {
  return typeof fn === 'function' ? methods.get(fn) : undefined;
}

/**
 * On a method with @Cron, @Interval or @Timeout: each fire runs only on the leader (with a valid lease), once per
 * scheduled time cluster-wide, recorded in the replicated ledger. Elsewhere the fire is skipped. The method gets the
 * run (TaskRunContext) as its argument: `signal` aborts when leadership or the lease ends, `token` fences its writes.
 *
 * On a provider class implementing LeaderTask: `run(signal, run)` is started whenever this node gains leadership and
 * the signal aborts when leadership ends; a run that throws while still leading is restarted with backoff.
 *
 *   @Cron('*\/5 * * * * *') @SingletonTask() expireUnpaid(run: TaskRunContext) { ... }
 *   @SingletonTask('outbox') @Injectable() class OutboxProcessor implements LeaderTask { async run(signal) { ... } }
 */
export function SingletonTask(options?: SingletonTaskOptions): ClassDecorator & MethodDecorator;
export function SingletonTask(name: string, options?: SingletonTaskOptions): ClassDecorator & MethodDecorator;
export function SingletonTask(nameOrOptions?: string | SingletonTaskOptions, more: SingletonTaskOptions = {}): ClassDecorator & MethodDecorator {
  const options: SingletonTaskOptions = typeof nameOrOptions === 'string' ? { ...more, name: nameOrOptions } : { ...nameOrOptions };
  const decorate = (target: object, key?: string | symbol, descriptor?: PropertyDescriptor): PropertyDescriptor | void => {
    if (descriptor === undefined) {
      const cls = target as Type<object>;
      Reflect.defineMetadata(SINGLETON_TASK_METADATA, { name: options.name ?? cls.name, options } satisfies SingletonTaskInfo, cls);
      return;
    }
    return wrapMethod(target, key!, descriptor, options);
  };
  return decorate as ClassDecorator & MethodDecorator;
}

/**
 * Replaces the method with a wrapper, because ScheduleExplorer takes `instance[key]` in onModuleInit, before any
 * lifecycle hook of ours could patch it. The schedule decorators keep their metadata on the function object, so the
 * wrapper carries every key of the original; one applied after us writes onto the wrapper itself. Either decorator
 * order therefore works.
 *
 * The coordinator comes by property injection on the prototype (optional, so the method still runs in an app without
 * the cluster module). Not a process-wide holder: several apps, each its own cluster member, can share a process (the
 * tests run three), and each instance must consult its own app's coordinator.
 */
function wrapMethod(proto: object, key: string | symbol, descriptor: PropertyDescriptor, options: SingletonTaskOptions): PropertyDescriptor {
  const original = descriptor.value as unknown;
  const where = `${proto.constructor.name}.${String(key)}`;
  if (typeof original !== 'function') throw new Error(`@SingletonTask() on ${where}: put it on a method`);
  const name = options.name ?? where;
  const logger = new Logger('CatgaCluster');
  Inject(ClusterCoordinator)(proto, COORDINATOR_PROPERTY);
  Optional()(proto, COORDINATOR_PROPERTY);
  // The scheduler's own arguments (cron passes its onComplete callback) mean nothing to the method: it gets its run.
  const wrapper = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    copyMetadata(original, wrapper); // keys written on the original after wrapping (by code holding it) still count
    const cluster = (this as Record<string, ClusterCoordinator | undefined> | undefined)?.[COORDINATOR_PROPERTY];
    const call = original as (...a: unknown[]) => unknown;
    if (!cluster) return Promise.resolve().then(() => call.apply(this, args)); // no cluster in this app: a plain method
    return runSingletonFire(cluster, name, fireTimeOf(wrapper, Date.now()), (run) => call.call(this, run), logger);
  };
  Object.defineProperty(wrapper, 'name', { value: (original as { name: string }).name });
  copyMetadata(original, wrapper);
  methods.set(wrapper, { name, options, original: original as (...args: unknown[]) => unknown });
  descriptor.value = wrapper;
  return descriptor;
}
