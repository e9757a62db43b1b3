import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { CatgaClusterModule } from '../lib/index.js';
import { KvController } from './kv/kv.controller.js';
import { OrdersModule } from './orders/orders.module.js';
import { StatusController } from './status.controller.js';

@Module({
  imports: [
    CqrsModule.forRoot(),
    // Configured from CATGA_NODE_ID, CATGA_MEMBERS, CATGA_DATA_DIR and CATGA_SECRET (see sample/cluster.ts).
    CatgaClusterModule.forRoot(),
    OrdersModule,
  ],
  controllers: [KvController, StatusController],
})
export class AppModule {}
