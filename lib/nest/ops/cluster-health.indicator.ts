import { Injectable } from '@nestjs/common';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import type { RuntimeStatus } from '../../cluster/raft-runtime.js';

export interface ClusterHealthDetails {
  readonly status: 'up' | 'down';
  readonly nodeId: string;
  readonly role: string;
  readonly leaderId: string | null;
  readonly term: number;
  /** Why the node is down. */
  readonly message?: string;
}

/** isReady's details: how far this node has applied what it knows is committed. */
export interface ClusterReadinessDetails extends ClusterHealthDetails {
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

/** The shape of @nestjs/terminus's `HealthIndicatorResult`: `{ [key]: { status, ...details } }`. */
export type ClusterHealthResult<Key extends string = 'cluster', Details extends ClusterHealthDetails = ClusterHealthDetails> = Record<Key, Details>;

/**
 * Health for @nestjs/terminus, and the readiness and liveness probes (`${healthPath}/ready`, `/live`).
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

  /**
   * Up while this node is part of a quorum with a known leader. A leader is up while its lease (a quorum's recent
   * acknowledgement) is valid; a follower is up while it knows a leader, which it forgets once an election timeout
   * passes without hearing from one.
   */
  isHealthy<const Key extends string = 'cluster'>(key: Key = 'cluster' as Key): ClusterHealthResult<Key> {
    const s = this.cluster.status();
    return result(key, details(s, leaderProblem(s)));
  }

  /**
   * Ready to serve: the node runs, knows a leader (see isHealthy), and has applied everything it knows is committed,
   * so its local reads are not behind what it has already seen commit. For a readiness probe: a node that restarts
   * and catches up takes traffic only after.
   */
  isReady<const Key extends string = 'cluster'>(key: Key = 'cluster' as Key): ClusterHealthResult<Key, ClusterReadinessDetails> {
    const s = this.cluster.status();
    const problem =
      this.stoppedProblem() ??
      leaderProblem(s) ??
      (s.appliedIndex < s.commitIndex ? `catching up: applied log index ${s.appliedIndex} of ${s.commitIndex} committed` : null);
    return result(key, { ...details(s, problem), commitIndex: s.commitIndex, appliedIndex: s.appliedIndex });
  }

  /**
   * Alive: the cluster node is running (not stopped). Independent of the other members on purpose — a liveness probe
   * that failed while a quorum is away would restart healthy pods and make the outage worse.
   */
  isLive<const Key extends string = 'cluster'>(key: Key = 'cluster' as Key): ClusterHealthResult<Key> {
    return result(key, details(this.cluster.status(), this.stoppedProblem()));
  }

  private stoppedProblem(): string | null {
    return this.cluster.isRunning ? null : 'the cluster node has stopped (the app is shutting down, the cluster was stopped, or its storage failed)';
  }
}

function leaderProblem(s: RuntimeStatus): string | null {
  if (s.isLeader) return s.leaseValid ? null : 'this node leads but a quorum has not confirmed its lease recently';
  return s.leaderId ? null : 'no leader is known: an election is running, or a quorum of members is unreachable';
}

function details(s: RuntimeStatus, problem: string | null): ClusterHealthDetails {
  return {
    status: problem ? 'down' : 'up',
    nodeId: s.nodeId,
    role: s.role,
    leaderId: s.leaderId || null,
    term: s.term,
    ...(problem && { message: problem }),
  };
}

function result<Key extends string, Details extends ClusterHealthDetails>(key: Key, d: Details): ClusterHealthResult<Key, Details> {
  return { [key]: d } as ClusterHealthResult<Key, Details>;
}
