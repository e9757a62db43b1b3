import type { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import type { ClusterMetrics } from '../../cluster/cluster-metrics.js';
import type { MetricsRegistry } from '../interfaces/cluster-module-options.interface.js';

/** Injection token of this node's NodeMetrics, or null when metrics are off. */
export const CLUSTER_METRICS = Symbol('catga:metrics');

/**
 * One node's handle on the catga_* metrics (prometheus-metrics.ts), typed without prom-client so that this package's
 * declarations load when it is not installed.
 */
export interface NodeMetrics extends ClusterMetrics {
  readonly nodeId: string;
  /** The registry the metrics are in. */
  readonly registry: MetricsRegistry;
  /** A @ForwardToLeader round trip from this node: ok, error (the handler threw), failed (no answer). */
  forwardSettled(kind: 'command' | 'query', outcome: 'ok' | 'error' | 'failed', seconds: number): void;
  /** Starts reporting the node's state (read at scrape time) and counting the leaders it sees. */
  attach(cluster: ClusterCoordinator): void;
  /** Stops reporting; the metrics leave the registry with the last node reporting into it. */
  detach(): void;
}
