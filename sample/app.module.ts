import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { ScheduleModule } from '@nestjs/schedule';
import { CatgaClusterModule } from '../lib/index.js';
import { KvController } from './kv/kv.controller.js';
import { OrdersModule } from './orders/orders.module.js';
import { ReportsModule } from './reports/reports.module.js';

@Module({
  imports: [
    CqrsModule.forRoot(),
    ScheduleModule.forRoot(), // @Cron fires on every node; @SingletonTask lets only the leader run the body
    // Configured from CATGA_NODE_ID, CATGA_MEMBERS, CATGA_DATA_DIR and CATGA_SECRET (see sample/cluster.ts). The status
    // JSON and the live page are opt-in; here they answer only requests from this machine (kubectl port-forward too).
    CatgaClusterModule.forRoot({ statusPath: true, pagePath: true, opsAllowFrom: ['loopback'] }),
    OrdersModule,
    ReportsModule,
  ],
  controllers: [KvController],
})
export class AppModule {}
