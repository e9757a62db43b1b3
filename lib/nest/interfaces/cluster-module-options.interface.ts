import type { Type } from '@nestjs/common';
import type { ClusterOptions } from '../../cluster/options.js';

/** `CatgaClusterModule.forRoot()` options: the cluster's own, plus how the module behaves inside Nest. */
export interface ClusterModuleOptions extends ClusterOptions {
  /**
   * ms after which a warning says no leader is known yet; 0 = no warning. Default 10000. Bootstrap does not wait for a
   * leader (so `app.listen` never depends on the other members); the first leader is logged when it appears, and
   * readiness is served at `${healthPath}/ready`. A single-member cluster elects itself during bootstrap all the same.
   */
  readonly startupTimeout?: number;
  /**
   * Error classes that forwarded commands may throw, so a follower rethrows the same class. JS built-ins, Nest's
   * HTTP exceptions and this library's exceptions are known already.
   */
  readonly errorTypes?: readonly Type<Error>[];
  /**
   * Prometheus metrics (catga_*) through prom-client, an optional peer. Default: on when prom-client is installed,
   * into its global registry. true insists (bootstrap fails without prom-client); false turns them off.
   */
  readonly metrics?: boolean | ClusterMetricsOptions;
}

export interface ClusterMetricsOptions {
  /** The registry the catga_* metrics join. Default: prom-client's global registry. */
  readonly registry?: MetricsRegistry;
}

/**
 * A prom-client `Registry`, described by the members used here so that this package's types do not need prom-client
 * installed. Pass a real `new Registry()` (or prom-client's `register`).
 */
export interface MetricsRegistry {
  readonly contentType: string;
  metrics(): Promise<string>;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

/**
 * HTTP routes the module serves (Nest controllers, so global prefixes, guards and interceptors apply). Given to
 * `forRoot()` / `forRootAsync()` themselves, never through an async factory: Nest reads controller paths while it scans
 * modules, before any factory runs.
 */
export interface ClusterRouteOptions {
  /** GET: this node's status as JSON. false: not served. Default '/cluster/status'. */
  readonly statusPath?: string | false;
  /** GET: the live cluster page (polls statusPath, which it needs). false: not served. Default '/cluster'. */
  readonly pagePath?: string | false;
  /**
   * GET: the metrics registry in Prometheus text format. Default false: apps usually serve their own registry (the
   * catga_* metrics are in it), so the module adds an endpoint only when asked.
   */
  readonly metricsPath?: string | false;
  /**
   * GET `${healthPath}/ready` and `${healthPath}/live`: probes for Kubernetes and load balancers, JSON, 200 when up and
   * 503 when down (see ClusterHealthIndicator.isReady / isLive). false: not served. Default '/cluster/health'.
   */
  readonly healthPath?: string | false;
}

export interface ForwardToLeaderOptions {
  /** Stable name the message travels under (default: the message class's name); unique across the app. */
  readonly name?: string;
  /** ms before a forwarded call fails (default: the module's requestTimeout, 5000). */
  readonly timeout?: number;
}

export interface LeaderOnlyOptions {
  /** Confirm leadership with a quorum (a ReadIndex round) before running, instead of trusting the lease alone. */
  readonly linearizable?: boolean;
}

export interface ClusterEventOptions {
  /** Stable name the event travels under (default: the class name); unique across the app. */
  readonly name?: string;
}
