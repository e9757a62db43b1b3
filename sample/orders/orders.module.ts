import { Module } from '@nestjs/common';
import { ExpireUnpaidOrdersJob } from './expire-unpaid.job.js';
import { CancelOrderHandler, CreateOrderHandler, GetOrderHandler, PayOrderHandler } from './order.handlers.js';
import { OrdersController } from './orders.controller.js';
import { OrdersGapHandler, OrdersProjection, OrdersReadModel } from './orders.read-model.js';
import { OutboxProcessor } from './outbox.processor.js';

@Module({
  controllers: [OrdersController],
  providers: [
    OrdersReadModel,
    OrdersProjection,
    OrdersGapHandler,
    CreateOrderHandler,
    PayOrderHandler,
    CancelOrderHandler,
    GetOrderHandler,
    ExpireUnpaidOrdersJob,
    OutboxProcessor,
  ],
  exports: [OrdersReadModel],
})
export class OrdersModule {}
