import { Controller, Get, Header, HttpStatus, Inject, Res, type Type } from '@nestjs/common';
import { ClusterHealthIndicator, type ClusterHealthDetails } from './cluster-health.indicator.js';

/** The probes served under healthPath. */
export const PROBES = ['ready', 'live'] as const;

/** Where a probe answers, for a normalized healthPath ('/' included). */
export function probePath(healthPath: string, probe: (typeof PROBES)[number]): string {
  return `${healthPath === '/' ? '' : healthPath}/${probe}`;
}

/** What express's Response and fastify's Reply both offer. */
interface StatusSetter {
  status(code: number): unknown;
}

/**
 * GET `${path}/ready` and `${path}/live`: `{ status: 'up' | 'down', ...details }`, 200 when up, 503 when down (what
 * Kubernetes probes and load balancers read). A down probe is an answer, not an error: it sets the status code rather
 * than throwing, so exception filters and error logging do not see every probe of a starting pod.
 */
export function healthController(path: string): Type<unknown> {
  @Controller(path)
  class ClusterProbesController {
    constructor(@Inject(ClusterHealthIndicator) private readonly health: ClusterHealthIndicator) {}

    @Get('ready')
    @Header('Cache-Control', 'no-store')
    ready(@Res({ passthrough: true }) res: StatusSetter): ClusterHealthDetails {
      return answer(res, this.health.isReady().cluster);
    }

    @Get('live')
    @Header('Cache-Control', 'no-store')
    live(@Res({ passthrough: true }) res: StatusSetter): ClusterHealthDetails {
      return answer(res, this.health.isLive().cluster);
    }
  }
  return ClusterProbesController;
}

function answer<D extends ClusterHealthDetails>(res: StatusSetter, details: D): D {
  res.status(details.status === 'up' ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
  return details;
}
