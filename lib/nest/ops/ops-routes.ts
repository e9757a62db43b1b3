import { UseGuards, type Type } from '@nestjs/common';
import { ClusterOptionsError } from '../../cluster/options.js';
import type { ClusterRouteOptions } from '../interfaces/cluster-module-options.interface.js';
import { clusterPageController } from './cluster-page.controller.js';
import { healthController, probePath, PROBES } from './health.controller.js';
import { metricsController } from './metrics.controller.js';
import { resolveAllowFrom, resolveOpsGuards, type OpsGuard } from './ops-access.js';
import { statusController } from './status.controller.js';

/** Options taken by forRoot()/forRootAsync() themselves: Nest fixes controllers and their guards while it scans modules. */
export const ROUTE_OPTION_KEYS = ['statusPath', 'pagePath', 'metricsPath', 'healthPath', 'opsGuard', 'opsAllowFrom'] as const;

/** Injection token of the module's ResolvedRoutes. */
export const CLUSTER_ROUTES = Symbol('catga:routes');

/** Normalized paths; null: not served. */
export interface ResolvedRoutes {
  readonly status: string | null;
  readonly page: string | null;
  readonly metrics: string | null;
  /** Base of the probes: `${health}/ready` and `${health}/live`. */
  readonly health: string | null;
  /** Run, in order, before the status, page and metrics routes (never the probes): the allow-list first, then opsGuard. */
  readonly guards: readonly OpsGuard[];
}

const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** The route options out of forRoot()'s argument, and the rest (the module's options). */
export function splitRouteOptions<T extends ClusterRouteOptions>(options: T): [ClusterRouteOptions, Omit<T, (typeof ROUTE_OPTION_KEYS)[number]>] {
  const rest: Record<string, unknown> = { ...(options as object) };
  const routes: Record<string, unknown> = {};
  for (const k of ROUTE_OPTION_KEYS) {
    if (k in rest) routes[k] = rest[k];
    delete rest[k];
  }
  return [routes as ClusterRouteOptions, rest as Omit<T, (typeof ROUTE_OPTION_KEYS)[number]>];
}

/**
 * Validates the route options (at forRoot time, so a mistake stops the app before its cluster starts). Status, page
 * and metrics reveal the cluster's layout and are off unless asked for; the probes, which say up or down (with the
 * node's id, role, term and leader, no addresses or members) and must answer a kubelet that sends no credentials, are
 * on. The page implies the status it polls.
 */
export function resolveRoutes(routes: ClusterRouteOptions): ResolvedRoutes {
  const page = routePath('pagePath', routes.pagePath, '/cluster', false);
  const status = routePath('statusPath', routes.statusPath ?? (page !== null), '/cluster/status', false);
  const metrics = routePath('metricsPath', routes.metricsPath, '/metrics', false);
  const health = routePath('healthPath', routes.healthPath, '/cluster/health', true);
  checkDistinct([
    ['statusPath', status],
    ['pagePath', page],
    ['metricsPath', metrics],
    // Its own path too, though nothing answers there: one path naming two routes would only confuse.
    ['healthPath', health],
    ...PROBES.map((p): [string, string | null] => [`healthPath + '/${p}'`, health && probePath(health, p)]),
  ]);
  if (page !== null && status === null) {
    throw new ClusterOptionsError('catga-cluster option pagePath: the page polls statusPath, which is false; leave pagePath off, or serve statusPath too');
  }
  const allowList = resolveAllowFrom(routes.opsAllowFrom);
  const guards = [...(allowList ? [allowList] : []), ...resolveOpsGuards(routes.opsGuard)];
  return { status, page, metrics, health, guards };
}

/**
 * The controllers serving the routes. Nest takes a controller's path from its decorator when it scans modules, before
 * any async options factory has run; so the paths are given to forRoot()/forRootAsync() directly and each becomes a
 * controller class made for it here, which works the same for both. The guards go on every controller but the probes'.
 */
export function opsControllers({ status, page, metrics, health, guards }: ResolvedRoutes): Type<unknown>[] {
  const guarded = (controller: Type<unknown>) => {
    if (guards.length > 0) (UseGuards(...guards) as ClassDecorator)(controller);
    return controller;
  };
  return [
    ...(status !== null ? [guarded(statusController(status))] : []),
    ...(page !== null && status !== null ? [guarded(clusterPageController(page, relativeUrl(page, status)))] : []),
    ...(metrics !== null ? [guarded(metricsController(metrics))] : []),
    ...(health !== null ? [healthController(health)] : []),
  ];
}

/** Two routes on one path would leave one of them unreachable (Nest serves the first registered): refuse that. */
function checkDistinct(routes: readonly (readonly [name: string, path: string | null])[]): void {
  const served = routes.filter((r): r is readonly [string, string] => r[1] !== null);
  for (const [i, [name, path]] of served.entries()) {
    const other = served.slice(0, i).find((r) => r[1] === path);
    if (other) throw new ClusterOptionsError(`catga-cluster options ${other[0]}, ${name}: expected different paths, got ${path}, ${path}`);
  }
}

/** A normalized '/a/b' path, or null when the route is off; true is `conventional`, undefined is `byDefault`. */
function routePath(name: string, value: string | boolean | undefined, conventional: string, byDefault: boolean): string | null {
  const v = value ?? byDefault;
  if (v === false) return null;
  if (v === true) return conventional;
  const segments = typeof v === 'string' ? v.split('/').filter((s) => s !== '') : null;
  if (!segments || !segments.every((s) => SEGMENT.test(s))) {
    throw new ClusterOptionsError(`catga-cluster option ${name}: expected a path like '${conventional}' (letters, digits, - . _ ~ and /), true or false, got ${JSON.stringify(v)}`);
  }
  return '/' + segments.join('/');
}

/**
 * `to` relative to the page at `from`, taken as a directory ('/cluster' → 'status' for '/cluster/status'): the page
 * resolves it against its own URL, so it still finds the status behind a global prefix or a proxy's path.
 */
function relativeUrl(from: string, to: string): string {
  const a = from.split('/').filter(Boolean);
  const b = to.split('/').filter(Boolean);
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common++;
  return [...a.slice(common).map(() => '..'), ...b.slice(common)].join('/');
}
