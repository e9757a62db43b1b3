import { Injectable, Logger } from '@nestjs/common';
import { EventBus } from '@nestjs/cqrs';
import { Cron } from '@nestjs/schedule';
import { SingletonTask } from '../../lib/index.js';
import { OrderCancelled } from './order.events.js';
import { OrdersReadModel } from './orders.read-model.js';

/** How long an order may stay unpaid (ms); SAMPLE_PAYMENT_WINDOW_MS overrides it for demos and tests. */
const PAYMENT_WINDOW_MS = Number(process.env.SAMPLE_PAYMENT_WINDOW_MS ?? 120_000);

/**
 * Every 5 seconds, on the leader only: cancel orders left unpaid past the payment window. The cron fires on all three
 * nodes; @SingletonTask runs the body where the leader holds its lease and records the run in the replicated ledger
 * (see /cluster/status). With `catchUp`, a new leader runs once a fire that fell into the failover gap.
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
  async expireUnpaidOrders(): Promise<void> {
    const cutoff = Date.now() - PAYMENT_WINDOW_MS;
    const stale = this.orders.all().filter((o) => o.status === 'open' && o.createdAt < cutoff);
    for (const o of stale) await this.events.publish(new OrderCancelled(o.id, 'unpaid'));
    if (stale.length > 0) this.logger.log(`cancelled ${stale.length} unpaid order(s): ${stale.map((o) => o.id).join(', ')}`);
  }
}
