import { Controller, Get, NotFoundException, Post } from '@nestjs/common';
import { ReportsService } from './reports.service.js';

@Controller('reports')
export class ReportsController {
  constructor(private readonly reports: ReportsService) {}

  /** Any node: takes the cluster-wide lock, builds the report, writes it with the lock's fencing token. */
  @Post('sales')
  generate() {
    return this.reports.generate();
  }

  @Get('sales')
  async latest() {
    const r = await this.reports.latest();
    if (!r) throw new NotFoundException('no sales report yet: POST /reports/sales');
    return r;
  }
}
