import { Module } from '@nestjs/common';
import { CancelOrderHandler, CreateOrderHandler, GetOrderHandler } from './order.handlers.js';
import { OrdersController } from './orders.controller.js';
import { OrdersProjection, OrdersReadModel } from './orders.read-model.js';

@Module({
  controllers: [OrdersController],
  providers: [OrdersReadModel, OrdersProjection, CreateOrderHandler, CancelOrderHandler, GetOrderHandler],
})
export class OrdersModule {}
