import { Injectable } from '@nestjs/common';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';

export interface ClusterHealthDetails {
  readonly status: 'up' | 'down';
  readonly nodeId: string;
  readonly role: string;
  readonly leaderId: string | null;
  readonly term: number;
  /** Why the node is down. */
  readonly message?: string;
}

/** The shape of @nestjs/terminus's `HealthIndicatorResult`: `{ [key]: { status, ...details } }`. */
export type ClusterHealthResult<Key extends string = 'cluster'> = Record<Key, ClusterHealthDetails>;

/**
 * Health for @nestjs/terminus: up while this node is part of a quorum with a known leader. A leader is up while its
 * lease (a quorum's recent acknowledgement) is valid; a follower is up while it knows a leader, which it forgets
 * once an election timeout passes without hearing from one.
 *
 *   @Get('health') @HealthCheck()
 *   check() { return this.health.check([() => this.cluster.isHealthy()]); }
 *
 * It builds the result object itself rather than through terminus's HealthIndicatorService, so the package loads
 * without terminus installed; HealthCheckService (terminus 11 and 12) answers 503 when any result is 'down'.
 */
@Injectable()
export class ClusterHealthIndicator {
  constructor(private readonly cluster: ClusterCoordinator) {}

  isHealthy<const Key extends string = 'cluster'>(key: Key = 'cluster' as Key): ClusterHealthResult<Key> {
    const s = this.cluster.status();
    const leaderId = s.leaderId || null;
    const problem = s.isLeader
      ? s.leaseValid
        ? null
        : 'this node leads but a quorum has not confirmed its lease recently'
      : leaderId
        ? null
        : 'no leader is known: an election is running, or a quorum of members is unreachable';
    const details: ClusterHealthDetails = {
      status: problem ? 'down' : 'up',
      nodeId: s.nodeId,
      role: s.role,
      leaderId,
      term: s.term,
      ...(problem && { message: problem }),
    };
    return { [key]: details } as ClusterHealthResult<Key>;
  }
}
