import { BadRequestException, ConflictException, NotFoundException } from '@nestjs/common';
import { CommandHandler, EventBus, QueryHandler, type ICommandHandler, type IQueryHandler } from '@nestjs/cqrs';
import { ClusterCoordinator, ForwardToLeader, LeaderOnly } from '../../lib/index.js';
import { CancelOrderCommand, CreateOrderCommand, GetOrderQuery, PayOrderCommand } from './order.commands.js';
import { OrderCancelled, OrderCreated, OrderPaid } from './order.events.js';
import { OrdersReadModel, type Order } from './orders.read-model.js';

/** Runs on the leader whichever node got the HTTP request, so order numbers never clash. */
@CommandHandler(CreateOrderCommand)
@ForwardToLeader()
export class CreateOrderHandler implements ICommandHandler<CreateOrderCommand> {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly events: EventBus,
    private readonly orders: OrdersReadModel,
  ) {}

  async execute(cmd: CreateOrderCommand): Promise<Order> {
    if (!cmd.customer || !(cmd.amount > 0)) throw new BadRequestException('an order needs a customer and an amount > 0');
    // A replicated counter: compare-and-set on the store, so a new leader continues where the old one stopped.
    let seq = 0;
    for (;;) {
      const cur = await this.cluster.store.get<number>('orders/seq', { consistency: 'linearizable' });
      seq = (cur?.value ?? 0) + 1;
      if ((await this.cluster.store.cas('orders/seq', cur?.version ?? 0, seq)).ok) break;
    }
    const id = `o-${seq}`;
    const createdAt = Date.now();
    const { index } = await (this.events.publish(new OrderCreated(id, cmd.customer, cmd.amount, this.cluster.nodeId, createdAt)) as unknown as Promise<{ index: number }>);
    return { id, customer: cmd.customer, amount: cmd.amount, status: 'open', createdOn: this.cluster.nodeId, createdAt, eventIndex: index ?? this.orders.get(id)?.eventIndex };
  }
}

/** Forwarded to the leader like CreateOrder: the leader's read model is the one the check below relies on. */
@CommandHandler(PayOrderCommand)
@ForwardToLeader()
export class PayOrderHandler implements ICommandHandler<PayOrderCommand> {
  constructor(
    private readonly events: EventBus,
    private readonly orders: OrdersReadModel,
  ) {}

  async execute(cmd: PayOrderCommand): Promise<Order> {
    const o = this.orders.get(cmd.orderId);
    if (!o) throw new NotFoundException(`no order ${cmd.orderId}`);
    if (o.status !== 'open') throw new ConflictException(`order ${o.id} is ${o.status}`);
    await this.events.publish(new OrderPaid(o.id));
    // The projection may have seen a cancellation first (the expiry job racing this payment): report what won.
    return this.orders.get(o.id)!;
  }
}

/** Must run on the leader; a follower answers with NotLeaderException naming it (the HTTP layer turns it into 421). */
@CommandHandler(CancelOrderCommand)
@LeaderOnly()
export class CancelOrderHandler implements ICommandHandler<CancelOrderCommand> {
  constructor(
    private readonly events: EventBus,
    private readonly orders: OrdersReadModel,
  ) {}

  async execute(cmd: CancelOrderCommand): Promise<Order> {
    const o = this.orders.get(cmd.orderId);
    if (!o) throw new NotFoundException(`no order ${cmd.orderId}`);
    if (o.status !== 'open') throw new ConflictException(`order ${o.id} is ${o.status}`);
    await this.events.publish(new OrderCancelled(o.id, 'customer'));
    return this.orders.get(o.id)!;
  }
}

/** Answered locally on any node from the read model. */
@QueryHandler(GetOrderQuery)
export class GetOrderHandler implements IQueryHandler<GetOrderQuery> {
  constructor(private readonly orders: OrdersReadModel) {}

  async execute(q: GetOrderQuery): Promise<Order | undefined> {
    return this.orders.get(q.orderId);
  }
}
