import { CLUSTER_OPTION_KEYS, ClusterOptionsError, type ClusterOptions } from '../cluster/options.js';
import { unknownOptionProblem } from '../cluster/option-keys.js';
import type { ClusterModuleOptions } from './interfaces/cluster-module-options.interface.js';
import { ROUTE_OPTION_KEYS } from './ops/ops-routes.js';

/** Every option of the module's own (the type makes a new one fail to compile until it is listed here). */
const MODULE_KEYS: Record<Exclude<keyof ClusterModuleOptions, keyof ClusterOptions>, true> = {
  startupTimeout: true,
  errorTypes: true,
  exceptionFilter: true,
  metrics: true,
};

/** What the options (of forRoot, or returned by forRootAsync's factory) may hold besides the routes. */
const OPTION_KEYS: readonly string[] = [...CLUSTER_OPTION_KEYS, ...Object.keys(MODULE_KEYS)];

/** forRoot(): options, routes and the `isGlobal` extra. */
export const FOR_ROOT_KEYS: readonly string[] = [...OPTION_KEYS, ...ROUTE_OPTION_KEYS, 'isGlobal'];

/**
 * A factory's result: options only. Route keys count as known here, so that the check that they are in the wrong place
 * (which says where they go) runs instead of a "did you mean" guess.
 */
export const FACTORY_KEYS: readonly string[] = [...OPTION_KEYS, ...ROUTE_OPTION_KEYS];

export function checkOptionKeys(options: object, valid: readonly string[]): void {
  const problem = unknownOptionProblem(options, valid);
  if (problem) throw new ClusterOptionsError(problem);
}
