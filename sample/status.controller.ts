import { Controller, Get } from '@nestjs/common';
import { ClusterCoordinator } from '../lib/index.js';

@Controller('cluster')
export class StatusController {
  constructor(private readonly cluster: ClusterCoordinator) {}

  /** Who leads, terms, commit/applied indexes, and each member's match index and last contact. */
  @Get('status')
  status() {
    return this.cluster.status();
  }
}
