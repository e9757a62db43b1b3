import { Controller, Get, Inject, Res, type Type } from '@nestjs/common';
import type { MetricsRegistry } from '../interfaces/cluster-module-options.interface.js';
import { CLUSTER_METRICS, type NodeMetrics } from './node-metrics.js';

/** What express's Response and fastify's Reply both offer. */
interface HeaderSetter {
  header(name: string, value: string): unknown;
}

/** GET `path`: the registry holding the catga_* metrics, in Prometheus text format (only with the metricsPath option). */
export function metricsController(path: string): Type<unknown> {
  @Controller(path)
  class ClusterMetricsController {
    private readonly registry: MetricsRegistry;

    constructor(@Inject(CLUSTER_METRICS) metrics: NodeMetrics | null) {
      // createNodeMetrics refuses a metricsPath without metrics before the cluster starts; this only narrows the type.
      if (!metrics) throw new Error('catga-cluster: metricsPath is served but metrics are off');
      this.registry = metrics.registry;
    }

    @Get()
    async scrape(@Res({ passthrough: true }) res: HeaderSetter): Promise<string> {
      res.header('Content-Type', this.registry.contentType);
      res.header('Cache-Control', 'no-store');
      return this.registry.metrics();
    }
  }
  return ClusterMetricsController;
}
