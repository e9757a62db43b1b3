import { Module } from '@nestjs/common';
import { Command, CommandBus, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { ClusterCoordinator, ClusterError, ForwardToLeader, LockTimeoutException, NotLeaderException, RemoteHandlerError } from '../../lib/index';
import { startCluster } from './fixtures';
import { BACKENDS, backendOptions, stopSharedEtcd } from '../support/backends';

/** Errors thrown by a @ForwardToLeader handler on the leader, as the calling node sees them. */

jest.setTimeout(30_000);

@ClusterError()
class InsufficientFunds extends Error {
  constructor(
    readonly account: string,
    readonly shortBy: number,
  ) {
    super(`account ${account} is ${shortBy} short`);
  }
}

class QuotaExceeded extends Error {
  override name = 'QuotaExceeded';
  constructor(readonly limit: number) {
    super(`quota of ${limit} exceeded`);
  }
}

/** Neither marked nor listed, and no name of its own: it still says 'Error'. */
class WarehouseClosed extends Error {
  constructor(readonly warehouse: string) {
    super(`warehouse ${warehouse} is closed`);
  }
}

/** Neither marked nor listed, with a name other than its class's. */
class CarrierFailure extends Error {
  constructor(readonly carrier: string) {
    super(`carrier ${carrier} refused the parcel`);
    this.name = 'CarrierRefused';
  }
}

class Fail extends Command<string> {
  constructor(readonly kind: string) {
    super();
  }
}

@CommandHandler(Fail)
@ForwardToLeader()
class FailHandler implements ICommandHandler<Fail> {
  static readonly ranOn: string[] = [];
  constructor(private readonly cluster: ClusterCoordinator) {}

  async execute(cmd: Fail): Promise<string> {
    FailHandler.ranOn.push(this.cluster.nodeId);
    switch (cmd.kind) {
      case 'marked':
        throw new InsufficientFunds('acc-7', 12);
      case 'listed':
        throw new QuotaExceeded(100);
      case 'unregistered':
        throw new WarehouseClosed('north');
      case 'unregistered-named':
        throw new CarrierFailure('fastship');
      case 'not-leader':
        throw new NotLeaderException('elsewhere', 'a downstream leader-only step refused');
      case 'lock-timeout':
        throw new LockTimeoutException('stock/north');
    }
    return 'ok';
  }
}

@Module({ providers: [FailHandler] })
class FailModule {}

const warnings: string[] = [];
const logger = { log() {}, error() {}, warn: (m: string) => warnings.push(m) };
const remoteWarnings = () => warnings.filter((w) => w.includes('RemoteHandlerError'));

afterAll(stopSharedEtcd);

describe.each(BACKENDS)('errors through @ForwardToLeader (%s backend)', (backend) => {
  let c: Awaited<ReturnType<typeof startCluster>>;
  beforeAll(async () => {
    c = await startCluster(undefined, { errorTypes: [QuotaExceeded], logger, ...(await backendOptions(backend)) }, [FailModule]);
  });
  afterAll(async () => {
    await c?.close();
  });
  beforeEach(() => {
    FailHandler.ranOn.length = 0;
    warnings.length = 0;
  });

  /** What a follower's CommandBus rejects with; the handler ran once, on the leader. */
  async function fromFollower(kind: string): Promise<Error> {
    const leader = await c.settledLeader();
    const follower = c.nodes.find((n) => n !== leader)!;
    const err = (await follower.app.get(CommandBus).execute(new Fail(kind)).catch((e: unknown) => e)) as Error;
    expect(FailHandler.ranOn).toEqual([leader.id]);
    FailHandler.ranOn.length = 0;
    return err;
  }

  test('a @ClusterError() class comes back as itself, with its message and fields, on a follower and on the leader', async () => {
    const err = await fromFollower('marked');
    expect(err).toBeInstanceOf(InsufficientFunds);
    expect(err).toMatchObject({ message: 'account acc-7 is 12 short', account: 'acc-7', shortBy: 12 });
    const leader = await c.settledLeader();
    await expect(leader.app.get(CommandBus).execute(new Fail('marked'))).rejects.toBeInstanceOf(InsufficientFunds);
    expect(remoteWarnings()).toEqual([]);
  });

  test('a class listed in errorTypes comes back as itself', async () => {
    const err = await fromFollower('listed');
    expect(err).toBeInstanceOf(QuotaExceeded);
    expect(err).toMatchObject({ name: 'QuotaExceeded', message: 'quota of 100 exceeded', limit: 100 });
    expect(remoteWarnings()).toEqual([]);
  });

  test('an unregistered class comes back as RemoteHandlerError named after its class, with its fields; one warning says how to register it', async () => {
    for (let i = 0; i < 3; i++) {
      const err = await fromFollower('unregistered');
      expect(err).toBeInstanceOf(RemoteHandlerError);
      expect(err).toMatchObject({ name: 'WarehouseClosed', message: 'warehouse north is closed', warehouse: 'north', fields: { warehouse: 'north' } });
    }
    expect(remoteWarnings()).toHaveLength(1);
    expect(remoteWarnings()[0]).toMatch(/threw WarehouseClosed.*mark the class with @ClusterError\(\) or list it in the errorTypes option/);
  });

  test('an unregistered class with a name of its own comes back under that name; one warning for that class', async () => {
    for (let i = 0; i < 2; i++) {
      const err = await fromFollower('unregistered-named');
      expect(err).toBeInstanceOf(RemoteHandlerError);
      expect(err).toMatchObject({ name: 'CarrierRefused', message: 'carrier fastship refused the parcel', carrier: 'fastship' });
    }
    expect(remoteWarnings()).toHaveLength(1);
    expect(remoteWarnings()[0]).toMatch(/threw CarrierFailure.*RemoteHandlerError \(name "CarrierRefused"\)/);
  });

  test("the library's own errors thrown by the handler come back as their classes, at once and not retried", async () => {
    const notLeader = await fromFollower('not-leader');
    expect(notLeader).toBeInstanceOf(NotLeaderException);
    expect(notLeader).toMatchObject({ leaderId: 'elsewhere', message: 'a downstream leader-only step refused' });
    const lock = await fromFollower('lock-timeout');
    expect(lock).toBeInstanceOf(LockTimeoutException);
    expect(lock).toMatchObject({ lockName: 'stock/north' });
    expect(remoteWarnings()).toEqual([]);
  });
});

test('@ClusterError() refuses a second class of the same name: errors travel by class name', () => {
  expect(() => {
    @ClusterError()
    class InsufficientFunds extends Error {}
    return InsufficientFunds;
  }).toThrow(/@ClusterError\(\) on InsufficientFunds: another class of that name is marked already/);
});
