import { Injectable, Logger } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { ClusterEventsMissed, eventIndex } from '../../lib/index.js';
import { OrderCancelled, OrderCreated, OrderPaid } from './order.events.js';

export interface Order {
  readonly id: string;
  readonly customer: string;
  readonly amount: number;
  readonly status: 'open' | 'paid' | 'cancelled';
  /** Set when the status is cancelled: by the customer, or by the expireUnpaidOrders job. */
  readonly cancelReason?: 'customer' | 'unpaid';
  /** The node whose handler created it (always the leader of that moment). */
  readonly createdOn: string;
  readonly createdAt: number;
  /** Log index of the OrderCreated event: the same on every node. */
  readonly eventIndex: number | undefined;
}

/** Every node builds this from the cluster events, so queries are answered locally on any node. */
@Injectable()
export class OrdersReadModel {
  private readonly orders = new Map<string, Order>();

  get(id: string): Order | undefined {
    return this.orders.get(id);
  }

  upsert(o: Order): void {
    this.orders.set(o.id, o);
  }

  /** Orders in event order (ascending event index). */
  all(): Order[] {
    return [...this.orders.values()].sort((a, b) => (a.eventIndex ?? 0) - (b.eventIndex ?? 0));
  }
}

@EventsHandler(OrderCreated, OrderPaid, OrderCancelled)
export class OrdersProjection implements IEventHandler<OrderCreated | OrderPaid | OrderCancelled> {
  constructor(private readonly model: OrdersReadModel) {}

  handle(e: OrderCreated | OrderPaid | OrderCancelled): void {
    if (e instanceof OrderCreated) {
      // Delivery is at least once across restarts: the event's log index makes the upsert idempotent.
      const { orderId: id, customer, amount, createdOn, createdAt } = e;
      this.model.upsert({ id, customer, amount, status: 'open', createdOn, createdAt, eventIndex: eventIndex(e) });
      return;
    }
    const o = this.model.get(e.orderId);
    // Every node applies the events in one order, so the first of "paid" and "cancelled" wins everywhere.
    if (!o || o.status !== 'open') return;
    if (e instanceof OrderPaid) this.model.upsert({ ...o, status: 'paid' });
    else this.model.upsert({ ...o, status: 'cancelled', cancelReason: e.reason });
  }
}

/**
 * This node was away longer than the event retention covers: the order events in the gap are lost to it, so its read
 * model may lack orders. A real service would reload the model from its own store here; the sample says so.
 */
@EventsHandler(ClusterEventsMissed)
export class OrdersGapHandler implements IEventHandler<ClusterEventsMissed> {
  private readonly logger = new Logger('OrdersReadModel');

  handle(gap: ClusterEventsMissed): void {
    this.logger.warn(`order events after log index ${gap.after} up to ${gap.upTo} were missed; this node's order list may be incomplete`);
  }
}
