import type { Type } from '@nestjs/common';
import { ClusterOptionsError } from '../../cluster/options.js';
import type { ClusterRouteOptions } from '../interfaces/cluster-module-options.interface.js';
import { clusterPageController } from './cluster-page.controller.js';
import { healthController, probePath, PROBES } from './health.controller.js';
import { metricsController } from './metrics.controller.js';
import { statusController } from './status.controller.js';

export const ROUTE_OPTION_KEYS = ['statusPath', 'pagePath', 'metricsPath', 'healthPath'] as const;

/** Injection token of the module's ResolvedRoutes. */
export const CLUSTER_ROUTES = Symbol('catga:routes');

/** Normalized paths; null: not served. */
export interface ResolvedRoutes {
  readonly status: string | null;
  readonly page: string | null;
  readonly metrics: string | null;
  /** Base of the probes: `${health}/ready` and `${health}/live`. */
  readonly health: string | null;
}

const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** Validates the route options (at forRoot time, so a mistake stops the app before its cluster starts). */
export function resolveRoutes(routes: ClusterRouteOptions): ResolvedRoutes {
  const status = routePath('statusPath', routes.statusPath, '/cluster/status');
  const page = routePath('pagePath', routes.pagePath, '/cluster');
  const metrics = routePath('metricsPath', routes.metricsPath, false);
  const health = routePath('healthPath', routes.healthPath, '/cluster/health');
  checkDistinct([
    ['statusPath', status],
    ['pagePath', page],
    ['metricsPath', metrics],
    // Its own path too, though nothing answers there: one path naming two routes would only confuse.
    ['healthPath', health],
    ...PROBES.map((p): [string, string | null] => [`healthPath + '/${p}'`, health && probePath(health, p)]),
  ]);
  if (page !== null && status === null) {
    throw new ClusterOptionsError('catga-cluster option pagePath: the page polls statusPath, which is false; set pagePath: false too, or give statusPath a path');
  }
  return { status, page, metrics, health };
}

/**
 * The controllers serving the routes. Nest takes a controller's path from its decorator when it scans modules, before
 * any async options factory has run; so the paths are given to forRoot()/forRootAsync() directly and each becomes a
 * controller class made for it here, which works the same for both.
 */
export function opsControllers({ status, page, metrics, health }: ResolvedRoutes): Type<unknown>[] {
  return [
    ...(status !== null ? [statusController(status)] : []),
    ...(page !== null && status !== null ? [clusterPageController(page, relativeUrl(page, status))] : []),
    ...(metrics !== null ? [metricsController(metrics)] : []),
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

/** A normalized '/a/b' path, or null when the route is off. */
function routePath(name: string, value: string | false | undefined, fallback: string | false): string | null {
  const v = value ?? fallback;
  if (v === false) return null;
  const segments = typeof v === 'string' ? v.split('/').filter((s) => s !== '') : null;
  if (!segments || !segments.every((s) => SEGMENT.test(s))) {
    const example = fallback || '/metrics';
    throw new ClusterOptionsError(`catga-cluster option ${name}: expected a path like '${example}' (letters, digits, - . _ ~ and /) or false, got ${JSON.stringify(v)}`);
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
