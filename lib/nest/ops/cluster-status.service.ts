import { Inject, Injectable } from '@nestjs/common';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { NotLeaderException } from '../../cluster/errors.js';
import { clusterOptionsOf, resolveClusterOptions } from '../../cluster/options.js';
import { CLUSTER_MODULE_OPTIONS } from '../cluster.module-definition.js';
import type { ClusterModuleOptions } from '../interfaces/cluster-module-options.interface.js';
import { buildStatusReport, replicationViewOf, type ClusterStatusReport, type ReplicationView } from './status-report.js';

/** The request channel on which a follower asks the leader for its replication view. */
const REPLICATION_CHANNEL = 'catga.ops.replication';
/** A status request waits this long at most for the leader's view, then reports without it. */
const VIEW_TIMEOUT_MS = 300;
/** Task runs a report carries. */
const TASK_RUNS_SHOWN = 20;

/**
 * Builds status reports. On the embedded backend, match indexes and last contact are known only on the leader, so a
 * follower asks the leader for them (one small request per report): the status of any node shows lag for every
 * member. Where the backend replicates the data itself (etcd), there is no such view; the report carries the backend's own.
 */
@Injectable()
export class ClusterStatusService {
  private readonly electionTimeoutMs: number;

  constructor(
    private readonly cluster: ClusterCoordinator,
    @Inject(CLUSTER_MODULE_OPTIONS) options: ClusterModuleOptions,
  ) {
    this.electionTimeoutMs = resolveClusterOptions(clusterOptionsOf(options)).electionTimeout;
    cluster.onRequest(REPLICATION_CHANNEL, async () => {
      const s = cluster.status();
      if (!s.isLeader) throw new NotLeaderException(s.leaderId);
      return replicationViewOf(s);
    });
  }

  async report(): Promise<ClusterStatusReport> {
    const c = this.cluster;
    const status = await c.refreshStatus();
    const view = status.replicatedLog ? await this.replicationView() : null;
    return buildStatusReport({
      status: c.status(),
      view,
      connected: (id) => c.isConnectedTo(id),
      electionTimeoutMs: this.electionTimeoutMs,
      leadershipChanges: c.leadershipHistory(),
      membershipChanges: c.membershipHistory(),
      tasks: c.tasks.runs().slice(0, TASK_RUNS_SHOWN),
      time: Date.now(),
    });
  }

  private async replicationView(): Promise<ReplicationView | null> {
    const s = this.cluster.status();
    if (s.isLeader) return replicationViewOf(s);
    if (!s.leaderId) return null;
    try {
      return (await this.cluster.requestLeader(REPLICATION_CHANNEL, null, VIEW_TIMEOUT_MS)).value as ReplicationView;
    } catch {
      return null; // the leader is gone or slow: report this node's own view
    }
  }
}
