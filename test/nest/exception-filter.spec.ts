import { ConflictException, Controller, Get, Param, type DynamicModule, type INestApplication } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CatgaClusterModule,
  ClusterExceptionFilter,
  ClusterStoppedError,
  ForwardOutcomeUnknownException,
  LockTimeoutException,
  NoLeaderException,
  NotLeaderException,
  ProposalOutcomeUnknownError,
  type ClusterModuleOptions,
} from '../../lib/index';
import { freePort } from '../transport/helpers';
import { httpGet, quiet } from './ops-apps';

/** ClusterExceptionFilter over real HTTP (express) on single-member clusters, registered either way. */

jest.setTimeout(30_000);

const THROWN: Record<string, () => Error> = {
  'not-leader': () => new NotLeaderException('node7'),
  'not-leader-none-known': () => new NotLeaderException(''),
  'no-leader': () => new NoLeaderException(),
  'outcome-unknown': () => new ProposalOutcomeUnknownError('the write timed out; it may have applied'),
  stopped: () => new ClusterStoppedError(),
  'lock-timeout': () => new LockTimeoutException('reports/sales'),
  'forward-outcome-unknown': () => new ForwardOutcomeUnknownException('sent to node7, no answer came back'),
  'http-exception': () => new ConflictException('order o-1 is paid'),
  plain: () => new Error('a bug'),
};

@Controller('throw')
class ThrowingController {
  @Get(':kind')
  throw(@Param('kind') kind: string): never {
    throw THROWN[kind]!();
  }
}

let dir: string;
let seq = 0;
const apps: INestApplication[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'catga-filter-'));
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  rmSync(dir, { recursive: true, force: true });
});

const solo = (extra: Partial<ClusterModuleOptions> = {}): ClusterModuleOptions => ({ nodeId: 'solo', dataDir: join(dir, `n${++seq}`), logger: quiet, ...extra });

async function start(cluster: DynamicModule, filter?: ClusterExceptionFilter) {
  const ref = await Test.createTestingModule({ imports: [CqrsModule.forRoot(), cluster], controllers: [ThrowingController] }).compile();
  const app = ref.createNestApplication({ logger: false });
  if (filter) app.useGlobalFilters(filter);
  apps.push(app);
  const port = await freePort();
  await app.listen(port, '127.0.0.1');
  return (kind: string) => httpGet(port, `/throw/${kind}`);
}

const registrations: [string, () => Promise<(kind: string) => ReturnType<typeof httpGet>>][] = [
  ['app.useGlobalFilters(new ClusterExceptionFilter())', () => start(CatgaClusterModule.forRoot(solo()), new ClusterExceptionFilter())],
  ['forRoot({ exceptionFilter: true })', () => start(CatgaClusterModule.forRoot(solo({ exceptionFilter: true })))],
  ['exceptionFilter: true from forRootAsync’s factory', () => start(CatgaClusterModule.forRootAsync({ useFactory: () => solo({ exceptionFilter: true }) }))],
];

describe.each(registrations)('%s', (_how, startApp) => {
  test('each cluster error becomes its status with a JSON code; 503s carry Retry-After', async () => {
    const get = await startApp();
    const cases: [kind: string, status: number, body: object, retryAfter: string | null][] = [
      ['not-leader', 421, { code: 'NOT_LEADER', leaderId: 'node7', message: 'this node is not the leader; the leader is node7' }, null],
      ['not-leader-none-known', 421, { code: 'NOT_LEADER', leaderId: null }, null],
      ['no-leader', 503, { code: 'NO_LEADER', message: expect.stringMatching(/^no leader is known/) }, '1'],
      ['outcome-unknown', 503, { code: 'OUTCOME_UNKNOWN', message: 'the write timed out; it may have applied' }, '1'],
      ['stopped', 503, { code: 'CLUSTER_STOPPED', message: 'the cluster node is stopped' }, '1'],
      ['lock-timeout', 409, { code: 'LOCK_TIMEOUT', message: 'lock "reports/sales" was not acquired in time' }, null],
      ['forward-outcome-unknown', 504, { code: 'FORWARD_OUTCOME_UNKNOWN', message: 'sent to node7, no answer came back' }, null],
    ];
    for (const [kind, status, body, retryAfter] of cases) {
      const r = await get(kind);
      expect({ kind, status: r.status, retryAfter: r.headers.get('retry-after') }).toEqual({ kind, status, retryAfter });
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(r.json).toEqual({ statusCode: status, message: expect.any(String), ...body });
    }
  });

  test('other errors keep Nest’s own handling: an HttpException its status and body, anything else a 500', async () => {
    const get = await startApp();
    const http = await get('http-exception');
    expect(http.status).toBe(409);
    expect(http.json).toEqual({ statusCode: 409, message: 'order o-1 is paid', error: 'Conflict' });
    const plain = await get('plain');
    expect(plain.status).toBe(500);
    expect(plain.json).toEqual({ statusCode: 500, message: 'Internal server error' });
  });
});

test('without the filter (exceptionFilter defaults to false), cluster errors are 500s like any other', async () => {
  const get = await start(CatgaClusterModule.forRoot(solo()));
  const r = await get('no-leader');
  expect(r.status).toBe(500);
  expect(r.headers.get('retry-after')).toBeNull();
});

test('exceptionFilter must be a boolean: forRoot refuses it at once, before any node starts', () => {
  const bad = { ...solo(), exceptionFilter: 'yes' } as unknown as ClusterModuleOptions;
  expect(() => CatgaClusterModule.forRoot(bad)).toThrow(/catga-cluster option exceptionFilter: expected true or false, got "yes"/);
});
