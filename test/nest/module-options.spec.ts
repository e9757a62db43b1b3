import { Module } from '@nestjs/common';
import { ConfigurableModuleBuilder } from '@nestjs/common';
import { CommandBus, CqrsModule } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, ClusterOptionsError } from '../../lib/index';
import { resolveClusterOptions } from '../../lib/cluster/options';
import { CQRS_COMMAND_HANDLER_METADATA, CQRS_QUERY_HANDLER_METADATA } from '../../lib/nest/constants';
import { CloseDay, CreateOrder, OrdersModule } from './fixtures';

jest.setTimeout(30_000);

const quiet = { log() {}, warn() {}, error() {} };
const three = ['a=127.0.0.1:17441', 'b=127.0.0.1:17442', 'c=127.0.0.1:17443'];

describe('bad options fail at bootstrap, naming the option', () => {
  const cases: [string, Parameters<typeof resolveClusterOptions>[0], RegExp][] = [
    ['unknown member format', { nodeId: 'a', members: ['a@127.0.0.1:1'], secret: 'long-enough' }, /members\[0\]: expected "id=host:port"/],
    ['duplicate ids', { nodeId: 'a', members: ['a=h:1', 'a=h:2'], secret: 'long-enough' }, /members\[1\]: duplicate id "a"/],
    ['nodeId not among members', { nodeId: 'x', members: three, secret: 'long-enough' }, /nodeId: expected one of the members' ids \(a, b, c\)/],
    ['non-positive election timeout', { nodeId: 'a', members: three, secret: 'long-enough', electionTimeout: 0 }, /electionTimeout: expected a number > 0/],
    ['non-positive heartbeat', { nodeId: 'a', members: three, secret: 'long-enough', heartbeatInterval: -5 }, /heartbeatInterval: expected a number > 0/],
    ['heartbeat >= election timeout', { nodeId: 'a', members: three, secret: 'long-enough', heartbeatInterval: 200, electionTimeout: 150 }, /heartbeatInterval: expected less than electionTimeout/],
    ['fractional compaction threshold', { nodeId: 'a', members: three, secret: 'long-enough', compactionThreshold: 1.5 }, /compactionThreshold: expected a whole number/],
    ['multi-member without a secret', { nodeId: 'a', members: three }, /secret: expected a shared secret .* insecure: true/],
    ['a misspelt key', { nodeId: 'a', electionTimout: 300 } as object, /option "electionTimout" is not an option; did you mean "electionTimeout"\?/],
    ['a key unlike any', { nodeId: 'a', colour: 'blue' } as object, /option "colour" is not an option$/],
    ['memory storage with a cluster port', { nodeId: 'a', members: three, secret: 'long-enough', storage: 'memory' }, /storage: expected 'file' for a node with a cluster port/],
    ['etcd without hosts', { nodeId: 'a', backend: { type: 'etcd', hosts: [] } as never, secret: 'long-enough' }, /backend: expected .*type: 'etcd', hosts/],
    ['etcd with a host that is no URL', { nodeId: 'a', backend: { type: 'etcd', hosts: ['ftp://x:1'] }, secret: 'long-enough' }, /backend: expected/],
    ['etcd with an unknown key', { nodeId: 'a', backend: { type: 'etcd', hosts: ['127.0.0.1:2379'], endpoints: [] } as never, secret: 'long-enough' }, /backend: expected/],
    ['etcd with join', { nodeId: 'a', advertise: '127.0.0.1:7001', join: ['127.0.0.1:7002'], backend: { type: 'etcd', hosts: ['127.0.0.1:2379'] }, secret: 'long-enough' }, /join: expected no join with backend etcd/],
    ['etcd with targetVoters', { nodeId: 'a', members: three, targetVoters: 5, backend: { type: 'etcd', hosts: ['127.0.0.1:2379'] }, secret: 'long-enough' }, /targetVoters: expected no targetVoters with backend etcd/],
    ['etcd without an address', { nodeId: 'a', backend: { type: 'etcd', hosts: ['127.0.0.1:2379'] }, secret: 'long-enough' }, /advertise: expected .*required with backend etcd/],
    ['etcd with heartbeatInterval', { nodeId: 'a', members: three, heartbeatInterval: 40, backend: { type: 'etcd', hosts: ['127.0.0.1:2379'] }, secret: 'long-enough' }, /heartbeatInterval: expected no heartbeatInterval with backend etcd/],
    ['etcd without a secret', { nodeId: 'a', advertise: '127.0.0.1:7001', backend: { type: 'etcd', hosts: ['127.0.0.1:2379'] } }, /secret: expected a shared secret/],
  ];
  test.each(cases)('%s', (_name, options, message) => {
    expect(() => resolveClusterOptions(options, {})).toThrow(ClusterOptionsError);
    expect(() => resolveClusterOptions(options, {})).toThrow(message);
  });

  test('the module refuses to start with the same message', async () => {
    const builder = Test.createTestingModule({
      imports: [CatgaClusterModule.forRoot({ nodeId: 'x', members: three, secret: 'long-enough', logger: quiet })],
    });
    await expect(builder.compile()).rejects.toThrow(/catga-cluster option nodeId/);
  });

  test('CATGA_* variables are read only with fromEnv: true or when no cluster option is given; given options win', () => {
    const env = { CATGA_NODE_ID: 'b', CATGA_MEMBERS: three.join(','), CATGA_SECRET: 'from-the-env', CATGA_DATA_DIR: '/tmp/from-env' };
    expect(resolveClusterOptions({}, env)).toMatchObject({ nodeId: 'b', secret: 'from-the-env', dataDir: '/tmp/from-env' });
    expect(resolveClusterOptions({ logger: quiet }, env).nodeId).toBe('b'); // a logger alone configures nothing
    const coded = resolveClusterOptions({ nodeId: 'solo' }, env);
    expect(coded).toMatchObject({ nodeId: 'solo', secret: undefined, dataDir: './.catga/solo' });
    expect(coded.members.map((m) => m.id)).toEqual(['solo']);
    const both = resolveClusterOptions({ fromEnv: true, secret: 'from-the-code' }, env);
    expect(both).toMatchObject({ nodeId: 'b', secret: 'from-the-code', dataDir: '/tmp/from-env' });
    expect(resolveClusterOptions({ fromEnv: false }, env).nodeId).toBe('node1');
    // Passed over without fromEnv: named, so createCluster can warn; with fromEnv: false the choice was explicit.
    expect(coded.ignoredEnv).toEqual(expect.arrayContaining(['CATGA_NODE_ID', 'CATGA_MEMBERS', 'CATGA_SECRET', 'CATGA_DATA_DIR']));
    expect(resolveClusterOptions({ fromEnv: false }, env).ignoredEnv).toEqual([]);
    expect(resolveClusterOptions({}, env).ignoredEnv).toEqual([]);
  });

  test('CATGA_ETCD_HOSTS and CATGA_ETCD_PREFIX pick the etcd backend; members then only give this node its address', () => {
    const env = { CATGA_NODE_ID: 'b', CATGA_MEMBERS: three.join(','), CATGA_SECRET: 'from-the-env', CATGA_ETCD_HOSTS: '127.0.0.1:2379, https://e2:2379', CATGA_ETCD_PREFIX: 'shop' };
    const o = resolveClusterOptions({}, env);
    expect(o.backend).toEqual({ type: 'etcd', hosts: ['http://127.0.0.1:2379', 'https://e2:2379'], prefix: 'shop/' });
    expect(o.self).toMatchObject({ id: 'b', host: '127.0.0.1', port: 17442 });
    expect(o.networked).toBe(true);
    expect(resolveClusterOptions({}, { ...env, CATGA_ETCD_HOSTS: undefined, CATGA_ETCD_PREFIX: undefined }).backend).toEqual({ type: 'embedded' });
    expect(() => resolveClusterOptions({}, { ...env, CATGA_ETCD_HOSTS: 'ftp://x' })).toThrow(/backend \(from CATGA_ETCD_HOSTS and CATGA_ETCD_PREFIX\): expected/);
    // A prefix alone chooses nothing: said, not ignored.
    expect(() => resolveClusterOptions({}, { ...env, CATGA_ETCD_HOSTS: undefined })).toThrow(/backend \(from CATGA_ETCD_PREFIX\): expected CATGA_ETCD_HOSTS too/);
  });

  test("a bad backend option is shown without the etcd password", () => {
    const bad = { nodeId: 'a', members: three, secret: 'long-enough', backend: { type: 'etcd', hosts: ['ftp://x'], auth: { username: 'u', password: 'SuperSecretPw' } } } as const;
    expect(() => resolveClusterOptions(bad, {})).toThrow(/backend: expected .*"auth":\{"username":"u","password":"<hidden>"\}/);
    expect(() => resolveClusterOptions(bad, {})).not.toThrow(/SuperSecretPw/);
  });

  test('a bad value from the environment names its variable', () => {
    expect(() => resolveClusterOptions({}, { CATGA_TARGET_VOTERS: '4' })).toThrow(/targetVoters \(from CATGA_TARGET_VOTERS\): expected an odd whole number/);
    expect(() => resolveClusterOptions({}, { CATGA_SECRET: 'short' })).toThrow(/secret \(from CATGA_SECRET\): expected .*got "<hidden>"/);
  });

  test('forRoot() and a forRootAsync() factory refuse a key that is no option, naming the closest', async () => {
    expect(() => CatgaClusterModule.forRoot({ statsPath: '/x' } as object)).toThrow(/option "statsPath" is not an option; did you mean "statusPath"\?/);
    expect(() => CatgaClusterModule.forRoot({ startupTimout: 5 } as object)).toThrow(/did you mean "startupTimeout"\?/);
    const builder = Test.createTestingModule({
      imports: [CatgaClusterModule.forRootAsync({ useFactory: () => ({ nodeId: 'a', logger: quiet, hearbeatInterval: 20 }) as object })],
    });
    await expect(builder.compile()).rejects.toThrow(/option "hearbeatInterval" is not an option; did you mean "heartbeatInterval"\?/);
  });

  test("the module's own options are checked against their schema, in forRoot and from a factory", async () => {
    expect(() => CatgaClusterModule.forRoot({ startupTimeout: '10s' } as object)).toThrow(/option startupTimeout: expected ms >= 0 \(0: no warning\), got "10s"/);
    expect(() => CatgaClusterModule.forRoot({ errorTypes: Error } as object)).toThrow(/option errorTypes: expected a list of error classes/);
    const builder = Test.createTestingModule({
      imports: [CatgaClusterModule.forRootAsync({ useFactory: () => ({ nodeId: 'a', logger: quiet, metrics: 'on' }) as object })],
    });
    await expect(builder.compile()).rejects.toThrow(/option metrics: expected true, false or \{ registry \}, got "on"/);
  });

  test('insecure: true allows a multi-member cluster without a secret', () => {
    expect(resolveClusterOptions({ nodeId: 'a', members: three, insecure: true }, {}).secret).toBeUndefined();
  });
});

describe('zero-config and forRootAsync', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'catga-opts-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('with no options and no CATGA_* environment, a single-member cluster leads at once and runs commands', async () => {
    const env = { CATGA_NODE_ID: undefined, CATGA_MEMBERS: undefined, CATGA_SECRET: undefined };
    const saved = { ...process.env };
    Object.assign(process.env, { CATGA_DATA_DIR: join(dir, 'solo') });
    for (const k of Object.keys(env)) delete process.env[k];
    try {
      const ref = await Test.createTestingModule({ imports: [CqrsModule.forRoot(), CatgaClusterModule.forRoot(), OrdersModule] }).compile();
      const app = ref.createNestApplication({ logger: false });
      await app.init();
      const cluster = app.get(ClusterCoordinator);
      expect(cluster.isLeader).toBe(true);
      expect(cluster.members.map((m) => m.id)).toEqual(['node1']);
      await expect(app.get(CommandBus).execute(new CreateOrder('solo-1', 1))).resolves.toEqual({ orderId: 'solo-1', ranOn: 'node1' });
      await expect(app.get(CommandBus).execute(new CloseDay())).resolves.toBe('node1');
      await app.close();
    } finally {
      process.env = saved;
    }
  });

  test('forRootAsync takes options from a factory with injected dependencies', async () => {
    const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } = new ConfigurableModuleBuilder<{ dir: string }>().build();
    @Module({ providers: [{ provide: 'CLUSTER_DIR', useFactory: (o: { dir: string }) => o.dir, inject: [MODULE_OPTIONS_TOKEN] }], exports: ['CLUSTER_DIR'] })
    class SettingsModule extends ConfigurableModuleClass {}
    const ref = await Test.createTestingModule({
      imports: [
        CqrsModule.forRoot(),
        CatgaClusterModule.forRootAsync({
          imports: [SettingsModule.register({ dir: join(dir, 'async') })],
          inject: ['CLUSTER_DIR'],
          useFactory: (d: string) => ({ nodeId: 'async1', dataDir: d, logger: quiet }),
        }),
      ],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    expect(app.get(ClusterCoordinator).nodeId).toBe('async1');
    await app.close();
  });

  test('the cqrs metadata keys we mirror are the ones @nestjs/cqrs 12 writes', () => {
    expect(Reflect.getMetadata(CQRS_COMMAND_HANDLER_METADATA, (OrdersModule as unknown as { name: string }) && require('./fixtures').CreateOrderHandler)).toBe(CreateOrder);
    expect(Reflect.getMetadata(CQRS_QUERY_HANDLER_METADATA, require('./fixtures').GetRanOnHandler)).toBe(require('./fixtures').GetRanOn);
  });
});
