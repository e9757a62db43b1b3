import { Inject, type Type } from '@nestjs/common';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { NotLeaderException } from '../../cluster/errors.js';
import { COORDINATOR_PROPERTY, LEADER_ONLY_METADATA } from '../constants.js';
import type { LeaderOnlyOptions } from '../interfaces/cluster-module-options.interface.js';
import { wrapExecute } from './wrap-execute.js';

/**
 * Runs the handler only while this node leads with a valid lease; elsewhere it throws NotLeaderException naming the
 * leader. With `{ linearizable: true }` a quorum confirms the leadership first.
 */
export function LeaderOnly(options: LeaderOnlyOptions = {}): ClassDecorator {
  return (target) => {
    const cls = target as unknown as Type<object>;
    Reflect.defineMetadata(LEADER_ONLY_METADATA, options, cls);
    Inject(ClusterCoordinator)(cls.prototype, COORDINATOR_PROPERTY);
    wrapExecute(cls, '@LeaderOnly()', (original) =>
      async function (this: object, message: object) {
        const cluster = (this as Record<string, ClusterCoordinator | undefined>)[COORDINATOR_PROPERTY];
        if (cluster) {
          if (options.linearizable) await cluster.confirmLeadership();
          if (!cluster.hasLease()) throw new NotLeaderException(cluster.leaderId ?? '');
        }
        return original.call(this, message);
      },
    );
  };
}
