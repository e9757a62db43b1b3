import { Injectable, Logger } from '@nestjs/common';
import { EventBus } from '@nestjs/cqrs';
import { Cron } from '@nestjs/schedule';
import { SingletonTask, type TaskRunContext } from '../../lib/index.js';
import { OrderCancelled } from './order.events.js';
import { OrdersReadModel } from './orders.read-model.js';

/** How long an order may stay unpaid (ms); SAMPLE_PAYMENT_WINDOW_MS overrides it for demos and tests. */
const PAYMENT_WINDOW_MS = Number(process.env.SAMPLE_PAYMENT_WINDOW_MS ?? 120_000);

/**
 * Every 5 seconds, on the leader only: cancel orders left unpaid past the payment window. The cron fires on all three
 * nodes; @SingletonTask runs the body where the leader holds its lease and records the run in the replicated ledger
 * (see /cluster/status). With `catchUp`, a new leader runs once a fire that fell into the failover gap. The body gets
 * its run: it stops as soon as `run.signal` aborts (leadership or the lease ended), and `run.token` fences its writes.
 */
@Injectable()
export class ExpireUnpaidOrdersJob {
  private readonly logger = new Logger('ExpireUnpaidOrders');

  constructor(
    private readonly orders: OrdersReadModel,
    private readonly events: EventBus,
  ) {}

  @Cron('*/5 * * * * *')
  @SingletonTask({ name: 'expireUnpaidOrders', catchUp: true })
  async expireUnpaidOrders(run: TaskRunContext): Promise<void> {
    const cutoff = Date.now() - PAYMENT_WINDOW_MS;
    const stale = this.orders.all().filter((o) => o.status === 'open' && o.createdAt < cutoff);
    const cancelled: string[] = [];
    for (const o of stale) {
      if (run.signal.aborted) break; // no longer the leader: the next one picks up the rest
      await this.events.publish(new OrderCancelled(o.id, 'unpaid'));
      cancelled.push(o.id);
    }
    if (cancelled.length > 0) this.logger.log(`run ${run.token}: cancelled ${cancelled.length} unpaid order(s): ${cancelled.join(', ')}`);
  }
}
