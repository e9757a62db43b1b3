import { ConflictException, Injectable } from '@nestjs/common';
import { ClusterCoordinator, LockTimeoutException } from '../../lib/index.js';
import { OrdersReadModel } from '../orders/orders.read-model.js';

export interface SalesReport {
  readonly orders: number;
  readonly paid: number;
  readonly revenue: number;
  readonly generatedOn: string;
  readonly generatedAt: string;
  /** The fencing token of the lock held while it was written. */
  readonly token: number;
}

const REPORT_KEY = 'reports/sales';

/**
 * Builds the sales report on whichever node is asked, one node at a time: a DistributedLock serializes the work
 * across the cluster, and its fencing token guards the write, so a holder that stalled past its lease cannot
 * overwrite a newer report.
 */
@Injectable()
export class ReportsService {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly orders: OrdersReadModel,
  ) {}

  async generate(): Promise<SalesReport> {
    const lock = await this.cluster.locks.acquire('reports/sales', { ttl: 10_000, wait: 0 }).catch((e: unknown) => {
      if (e instanceof LockTimeoutException) throw new ConflictException('a sales report is being generated on another node; try again shortly');
      throw e;
    });
    try {
      const all = this.orders.all();
      const paid = all.filter((o) => o.status === 'paid');
      const report: SalesReport = {
        orders: all.length,
        paid: paid.length,
        revenue: paid.reduce((sum, o) => sum + o.amount, 0),
        generatedOn: this.cluster.nodeId,
        generatedAt: new Date().toISOString(),
        token: lock.token,
      };
      await this.writeFenced(report, lock.signal);
      return report;
    } finally {
      await lock.release();
    }
  }

  async latest(): Promise<SalesReport | undefined> {
    return (await this.cluster.store.get<SalesReport>(REPORT_KEY, { consistency: 'linearizable' }))?.value;
  }

  /** Compare-and-set loop that refuses to replace a report written under a newer token. */
  private async writeFenced(report: SalesReport, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const cur = await this.cluster.store.get<SalesReport>(REPORT_KEY, { consistency: 'linearizable' });
      if (cur && cur.value.token > report.token) throw new ConflictException(`a newer report (token ${cur.value.token}) exists`);
      if ((await this.cluster.store.cas(REPORT_KEY, cur?.version ?? 0, report)).ok) return;
    }
  }
}
