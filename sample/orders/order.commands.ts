import { Command, Query } from '@nestjs/cqrs';
import type { Order } from './orders.read-model.js';

export class CreateOrderCommand extends Command<Order> {
  constructor(
    readonly customer: string,
    readonly amount: number,
  ) {
    super();
  }
}

export class CancelOrderCommand extends Command<Order> {
  constructor(readonly orderId: string) {
    super();
  }
}

export class PayOrderCommand extends Command<Order> {
  constructor(readonly orderId: string) {
    super();
  }
}

export class GetOrderQuery extends Query<Order | undefined> {
  constructor(readonly orderId: string) {
    super();
  }
}
