import { CqrsModule } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { CatgaClusterModule } from '../../../lib/index';
import { OrdersModule } from '../../../sample/orders/orders.module';

/** The README's testing snippet: the sample's OrdersModule on CatgaClusterModule.forTest(). */
export async function ordersTestApp() {
  const moduleRef = await Test.createTestingModule({
    imports: [CqrsModule.forRoot(), CatgaClusterModule.forTest(), OrdersModule],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init(); // the single in-memory member leads once init returns
  return app;
}
