import { Body, Controller, Get, HttpCode, NotFoundException, Param, Post } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { CancelOrderCommand, CreateOrderCommand, GetOrderQuery, PayOrderCommand } from './order.commands.js';

@Controller('orders')
export class OrdersController {
  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
  ) {}

  @Post()
  create(@Body() body: { customer: string; amount: number }) {
    return this.commands.execute(new CreateOrderCommand(body?.customer, Number(body?.amount)));
  }

  @Get(':id')
  async get(@Param('id') id: string) {
    const o = await this.queries.execute(new GetOrderQuery(id));
    if (!o) throw new NotFoundException(`no order ${id} (yet) on this node`);
    return o;
  }

  @Post(':id/pay')
  @HttpCode(200)
  pay(@Param('id') id: string) {
    return this.commands.execute(new PayOrderCommand(id));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  cancel(@Param('id') id: string) {
    return this.commands.execute(new CancelOrderCommand(id));
  }
}
