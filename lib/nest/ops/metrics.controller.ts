import { Controller, Get, Inject, Res, type Type } from '@nestjs/common';
import { ClusterOptionsError } from '../../cluster/options.js';
import type { MetricsRegistry } from '../interfaces/cluster-module-options.interface.js';
import { CLUSTER_METRICS, type NodeMetrics } from './prometheus-metrics.js';

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
      if (!metrics) {
        throw new ClusterOptionsError(
          'catga-cluster option metricsPath: expected metrics to be on (prom-client installed, metrics not false), or metricsPath: false',
        );
      }
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
