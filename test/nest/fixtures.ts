import { Injectable, Module, NotFoundException, type DynamicModule, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Command,
  CommandHandler,
  CqrsModule,
  EventsHandler,
  Query,
  QueryHandler,
  type ICommandHandler,
  type IEventHandler,
  type IQueryHandler,
} from '@nestjs/cqrs';
import type { INestApplicationContext } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CatgaClusterModule,
  ClusterCoordinator,
  ClusterEvent,
  eventIndex,
  ForwardToLeader,
  LeaderOnly,
  type ClusterModuleOptions,
} from '../../lib/index';
import { freePorts } from '../transport/helpers';

/** Where each app's handlers record what ran on it. */
export class Journal {
  readonly ran: string[] = [];
  readonly events: { id: string; index: number | undefined }[] = [];
}

export class CreateOrder extends Command<{ orderId: string; ranOn: string }> {
  constructor(
    readonly orderId: string,
    readonly amount: number,
  ) {
    super();
  }
}

export class OrderRejected extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'OrderRejected';
  }
}

export class CloseDay extends Command<string> {}

export class GetRanOn extends Query<string> {}

@ClusterEvent()
export class OrderCreated {
  constructor(readonly orderId: string) {}
}

@CommandHandler(CreateOrder)
@ForwardToLeader()
export class CreateOrderHandler implements ICommandHandler<CreateOrder> {
  constructor(
    private readonly journal: Journal,
    private readonly cluster: ClusterCoordinator,
  ) {}

  async execute(cmd: CreateOrder) {
    if (!(cmd instanceof CreateOrder)) throw new Error('handler got a plain object, not a CreateOrder');
    if (cmd.amount < 0) throw new OrderRejected(`amount ${cmd.amount} is negative`, 'NEGATIVE');
    if (cmd.amount === 404) throw new NotFoundException(`no customer for ${cmd.orderId}`);
    this.journal.ran.push(cmd.orderId);
    return { orderId: cmd.orderId, ranOn: this.cluster.nodeId };
  }
}

@LeaderOnly()
@CommandHandler(CloseDay)
export class CloseDayHandler implements ICommandHandler<CloseDay> {
  constructor(private readonly cluster: ClusterCoordinator) {}
  async execute() {
    return this.cluster.nodeId;
  }
}

@QueryHandler(GetRanOn)
export class GetRanOnHandler implements IQueryHandler<GetRanOn> {
  constructor(private readonly cluster: ClusterCoordinator) {}
  async execute() {
    return this.cluster.nodeId;
  }
}

@Injectable()
@EventsHandler(OrderCreated)
export class OrderCreatedHandler implements IEventHandler<OrderCreated> {
  constructor(private readonly journal: Journal) {}
  handle(e: OrderCreated) {
    this.journal.events.push({ id: e.orderId, index: eventIndex(e) });
  }
}

@Module({
  providers: [Journal, CreateOrderHandler, CloseDayHandler, GetRanOnHandler, OrderCreatedHandler],
})
export class OrdersModule {}

export interface TestNode {
  readonly id: string;
  readonly app: INestApplicationContext;
  readonly cluster: ClusterCoordinator;
  readonly journal: Journal;
}

export async function startApp(cluster: DynamicModule, modules: readonly Type<object>[] = []): Promise<INestApplicationContext> {
  const ref = await Test.createTestingModule({ imports: [CqrsModule.forRoot(), cluster, OrdersModule, ...modules] }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

/** Three apps, one process, real TCP on 127.0.0.1 (free ports unless `basePort` is given) and real dataDirs. */
export async function startCluster(basePort?: number, extra: Partial<ClusterModuleOptions> = {}, modules: readonly Type<object>[] = []) {
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-nest-'));
  const ids = ['a', 'b', 'c'];
  const ports = basePort === undefined ? await freePorts(ids.length) : ids.map((_, i) => basePort + i);
  const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
  const t0 = Date.now();
  const say = (m: string) => console.log(`${Date.now() - t0}ms ${m}`);
  const silent = process.env.CATGA_TEST_LOG ? { log: say, warn: say, error: say } : { log() {}, warn() {}, error() {} };
  const apps = await Promise.all(
    ids.map((id) =>
      startApp(
        CatgaClusterModule.forRoot({ nodeId: id, members, dataDir: join(dataRoot, id), secret: 'nest-test-secret', logger: silent, ...extra }),
        modules,
      ),
    ),
  );
  const nodes: TestNode[] = apps.map((app, i) => ({ id: ids[i]!, app, cluster: app.get(ClusterCoordinator), journal: app.get(Journal) }));
  await Promise.all(nodes.map((n) => n.cluster.waitForLeader({ timeout: 10_000 })));
  return {
    nodes,
    leader: () => nodes.find((n) => n.cluster.isLeader)!,
    /** The leader once there is one (a transfer or election may be in flight). */
    settledLeader: async () => {
      const id = await nodes[0]!.cluster.waitForLeader({ timeout: 10_000 });
      return nodes.find((n) => n.id === id)!;
    },
    followers: () => nodes.filter((n) => !n.cluster.isLeader),
    close: async () => {
      await Promise.all(apps.map((a) => a.close()));
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}
