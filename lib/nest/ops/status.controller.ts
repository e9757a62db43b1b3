import { Controller, Get, Header, Inject, type Type } from '@nestjs/common';
import { ClusterStatusService } from './cluster-status.service.js';
import type { ClusterStatusReport } from './status-report.js';

/** GET `path`: this node's status as JSON (see ClusterStatusReport). A class per path: Nest routes by decorator. */
export function statusController(path: string): Type<unknown> {
  @Controller(path)
  class ClusterStatusController {
    constructor(@Inject(ClusterStatusService) private readonly status: ClusterStatusService) {}

    @Get()
    @Header('Cache-Control', 'no-store')
    report(): Promise<ClusterStatusReport> {
      return this.status.report();
    }
  }
  return ClusterStatusController;
}
