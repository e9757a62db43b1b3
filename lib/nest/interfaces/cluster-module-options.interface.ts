import type { OpsGuard } from '../ops/ops-access.js';
import type { OptionsOf } from '../../cluster/option-schema.js';
import type { ClusterOptions } from '../../cluster/options.js';
import type { MODULE_OPTIONS } from '../module-options.schema.js';

/** `CatgaClusterModule.forRoot()` options: the cluster's own, plus how the module behaves inside Nest (MODULE_OPTIONS). */
export interface ClusterModuleOptions extends ClusterOptions, OptionsOf<typeof MODULE_OPTIONS> {}

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
 * `forRoot()` / `forRootAsync()` themselves, never through an async factory: Nest reads controller paths and guards
 * while it scans modules, before any factory runs.
 *
 * Safe by default: only the health probes (up or down, nothing more) are served unless the app asks. The status, the
 * page and the metrics show the cluster's members, addresses and traffic; turn them on with a path (or true for the
 * conventional one), and put them behind `opsGuard` and/or `opsAllowFrom`, which apply to those three and never to
 * the probes.
 */
export interface ClusterRouteOptions {
  /** GET: this node's status as JSON. true: at '/cluster/status'. Default false, or '/cluster/status' with pagePath. */
  readonly statusPath?: string | boolean;
  /** GET: the live cluster page (polls statusPath, which it turns on). true: at '/cluster'. Default false. */
  readonly pagePath?: string | boolean;
  /**
   * GET: the metrics registry in Prometheus text format. true: at '/metrics'. Default false: apps usually serve their
   * own registry (the catga_* metrics are in it), so the module adds an endpoint only when asked.
   */
  readonly metricsPath?: string | boolean;
  /**
   * GET `${healthPath}/ready` and `${healthPath}/live`: probes for Kubernetes and load balancers, JSON, 200 when up and
   * 503 when down (see ClusterHealthIndicator.isReady / isLive). false: not served. Default '/cluster/health' (true).
   * No opsGuard or opsAllowFrom here: a kubelet sends no credentials and comes from the node's address.
   */
  readonly healthPath?: string | boolean;
  /**
   * Guard(s) for the status, page and metrics routes, as `@UseGuards()` takes them: a CanActivate class (Nest
   * instantiates it in this module, so its dependencies must come from a global module or from forRootAsync's
   * `imports`) or an instance. They run after the app's global guards and after opsAllowFrom. The page polls the
   * status from the browser, so a guard on it must accept what a browser sends (a session cookie, say).
   */
  readonly opsGuard?: OpsGuard | readonly OpsGuard[];
  /**
   * Client addresses the status, page and metrics routes answer; others get 403. Entries: 'loopback' (127.0.0.0/8
   * and ::1), an IPv4 or IPv6 address, or a CIDR range ('10.0.0.0/8'). Compared with the request's address as the
   * HTTP platform reports it (`req.ip`: the TCP peer's address, or X-Forwarded-For only if the app set express's
   * `trust proxy`); never with the Host header, which the client writes. Default: any address.
   */
  readonly opsAllowFrom?: readonly string[];
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
