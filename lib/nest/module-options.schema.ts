import type { Type } from '@nestjs/common';
import { CLUSTER_OPTION_KEYS, ClusterOptionsError } from '../cluster/options.js';
import { unknownOptionProblem } from '../cluster/option-keys.js';
import { opt, type OptionSpec } from '../cluster/option-schema.js';
import type { ClusterMetricsOptions } from './interfaces/cluster-module-options.interface.js';
import { ROUTE_OPTION_KEYS } from './ops/ops-routes.js';

/**
 * The module's own options (besides the cluster's and the routes'), with their checks; ClusterModuleOptions derives
 * its keys and types from it.
 */
export const MODULE_OPTIONS = {
  /**
   * ms after which a warning says no leader is known yet; 0 = no warning. Default 10000. Bootstrap does not wait for a
   * leader (so `app.listen` never depends on the other members); the first leader is logged when it appears, and
   * readiness is served at `${healthPath}/ready`. A single-member cluster elects itself during bootstrap all the same.
   */
  startupTimeout: opt.custom<number>('ms >= 0 (0: no warning)', (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0),
  /**
   * Error classes that forwarded commands may throw, so a follower rethrows the same class (like marking them with
   * @ClusterError()). JS built-ins, Nest's HTTP exceptions and this library's exceptions are known already; any other
   * class comes back as RemoteHandlerError.
   */
  errorTypes: opt.custom<readonly Type<Error>[]>('a list of error classes, like [OutOfStock]', (v) => Array.isArray(v) && v.every((c) => typeof c === 'function')),
  /**
   * Register ClusterExceptionFilter as a global filter (APP_FILTER), so the cluster's errors answer HTTP requests
   * with 421, 503, 409 or 504 and a JSON `code`. Default false.
   */
  exceptionFilter: opt.boolean(),
  /**
   * Prometheus metrics (catga_*) through prom-client, an optional peer. Default: on when prom-client is installed,
   * into its global registry. true insists (bootstrap fails without prom-client); false turns them off.
   */
  metrics: opt.custom<boolean | ClusterMetricsOptions>('true, false or { registry }', (v) => typeof v === 'boolean' || (typeof v === 'object' && v !== null && !Array.isArray(v))),
} satisfies Record<string, OptionSpec<unknown>>;

/** What the options (of forRoot, or returned by forRootAsync's factory) may hold besides the routes. */
const OPTION_KEYS: readonly string[] = [...CLUSTER_OPTION_KEYS, ...Object.keys(MODULE_OPTIONS)];

/** forRoot(): options, routes and the `isGlobal` extra. */
export const FOR_ROOT_KEYS: readonly string[] = [...OPTION_KEYS, ...ROUTE_OPTION_KEYS, 'isGlobal'];

/**
 * A factory's result: options only. Route keys count as known here, so that the check that they are in the wrong place
 * (which says where they go) runs instead of a "did you mean" guess.
 */
export const FACTORY_KEYS: readonly string[] = [...OPTION_KEYS, ...ROUTE_OPTION_KEYS];

/** Unknown keys, then the module's own values (the cluster's are checked by resolveClusterOptions, the routes' by resolveRoutes). */
export function checkModuleOptions(options: object, valid: readonly string[]): void {
  const problem = unknownOptionProblem(options, valid);
  if (problem) throw new ClusterOptionsError(problem);
  for (const [key, spec] of Object.entries(MODULE_OPTIONS) as [string, OptionSpec<unknown>][]) {
    const value = (options as Record<string, unknown>)[key];
    if (value !== undefined && !spec.is(value)) {
      throw new ClusterOptionsError(`catga-cluster option ${key}: expected ${spec.expected}, got ${JSON.stringify(value) ?? String(value)}`);
    }
  }
}
