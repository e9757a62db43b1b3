import { Injectable } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { eventIndex } from '../../lib/index.js';
import { OrderCancelled, OrderCreated } from './order.events.js';

export interface Order {
  readonly id: string;
  readonly customer: string;
  readonly amount: number;
  readonly status: 'open' | 'cancelled';
  /** The node whose handler created it (always the leader of that moment). */
  readonly createdOn: string;
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
}

@EventsHandler(OrderCreated, OrderCancelled)
export class OrdersProjection implements IEventHandler<OrderCreated | OrderCancelled> {
  constructor(private readonly model: OrdersReadModel) {}

  handle(e: OrderCreated | OrderCancelled): void {
    if (e instanceof OrderCreated) {
      // Delivery is at least once across restarts: the event's log index makes the upsert idempotent.
      this.model.upsert({ id: e.orderId, customer: e.customer, amount: e.amount, status: 'open', createdOn: e.createdOn, eventIndex: eventIndex(e) });
    } else {
      const o = this.model.get(e.orderId);
      if (o) this.model.upsert({ ...o, status: 'cancelled' });
    }
  }
}
