import { Controller, Get, Header, type Type } from '@nestjs/common';
import { CLUSTER_PAGE_CSP, renderClusterPage } from './cluster-page.html.js';

/** GET `path`: the live cluster page, polling the status endpoint at `statusUrl` (relative to `path`). */
export function clusterPageController(path: string, statusUrl: string): Type<unknown> {
  const page = renderClusterPage(statusUrl);

  @Controller(path)
  class ClusterPageController {
    @Get()
    @Header('Content-Type', 'text/html; charset=utf-8')
    @Header('Cache-Control', 'no-store')
    @Header('Content-Security-Policy', CLUSTER_PAGE_CSP)
    @Header('X-Content-Type-Options', 'nosniff')
    @Header('Referrer-Policy', 'no-referrer')
    page(): string {
      return page;
    }
  }
  return ClusterPageController;
}
