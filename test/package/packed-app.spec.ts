import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePorts } from '../transport/helpers.js';
import { npmEnv } from './npm-env.js';

/**
 * The package as a user gets it: `npm pack` the built library, install the tarball with the Nest 12 peers into a
 * scratch app, compile the app with strict TypeScript against the installed declarations (importing only
 * 'catga-cluster' and, once, 'catga-cluster/testing'), check that an internal path is closed and the bin runs, then
 * start three nodes of the app and send a @ForwardToLeader command to the followers over HTTP: it runs on the leader.
 *
 * Installs with the exact versions in this repository's node_modules and --prefer-offline, so npm's cache serves
 * them (about 6 s warm; the first run on a machine may fetch). --ignore-scripts: nothing needs building (msgpackr's
 * native part comes prebuilt, and the library works without it). Every step is bounded.
 */

jest.setTimeout(240_000);

const ROOT = resolve(__dirname, '../..');
const PEERS = ['@nestjs/common', '@nestjs/core', '@nestjs/cqrs', '@nestjs/platform-express', 'reflect-metadata', 'rxjs'];
const TOOLS = ['typescript', '@types/node'];

const work = mkdtempSync(join(tmpdir(), 'catga-packed-'));
const app = join(work, 'app');
const timings: Record<string, number> = {};
let tarball = '';
let compiled = false;
const children: ChildProcess[] = [];

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end within `timeout` ms, timing it under `step`; a failure or a timeout says what it printed. */
function run(step: string, cmd: string, args: string[], cwd: string, timeout: number, env = npmEnv()): Run {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  timings[step] = Date.now() - started;
  if (r.error || r.signal) throw new Error(`${step}: ${cmd} ${args.join(' ')} did not finish (${r.error?.message ?? r.signal}, limit ${timeout} ms):\n${r.stdout}\n${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function versionOf(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
  }
  rmSync(work, { recursive: true, force: true });
  const total = Object.values(timings).reduce((a, b) => a + b, 0);
  console.log(`packed app steps (ms): ${JSON.stringify(timings)}; total ${total} ms`);
});

test('npm pack of the built library', () => {
  for (const f of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/testing.js']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  const r = run('pack', 'npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT, 60_000);
  expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({ status: 0, stderr: '' });
  const [packed] = JSON.parse(r.stdout) as { filename: string }[];
  tarball = join(work, packed!.filename);
  expect(existsSync(tarball)).toBe(true);
});

test('installs into a scratch app with the Nest 12 peers', () => {
  expect(tarball).not.toBe('');
  for (const dir of ['src', 'internal']) mkdirSync(join(app, dir), { recursive: true });
  for (const [file, text] of Object.entries(APP_FILES)) writeFileSync(join(app, file), text);
  const specs = [tarball, ...[...PEERS, ...TOOLS].map((name) => `${name}@${versionOf(name)}`)];
  const r = run('install', 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...specs], app, 180_000);
  if (r.status !== 0) throw new Error(`npm install failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/catga-cluster/package.json'), 'utf8')) as { version: string };
  expect(installed.version).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test("compiles with strict TypeScript against the package's declarations, and an internal path does not", () => {
  expect(existsSync(join(app, 'node_modules/catga-cluster'))).toBe(true);
  const ok = run('tsc', 'npx', ['--no', '--', 'tsc', '-p', '.'], app, 60_000);
  if (ok.status !== 0) throw new Error(`the app does not compile:\n${ok.stdout}\n${ok.stderr}`);
  expect(existsSync(join(app, 'dist/main.js'))).toBe(true);
  compiled = true;

  const deep = run('tsc internal', 'npx', ['--no', '--', 'tsc', '-p', 'tsconfig.internal.json'], app, 60_000);
  expect(deep.status).not.toBe(0);
  expect(deep.stdout).toMatch(/TS2307: Cannot find module 'catga-cluster\/dist\/lib\/cluster\/options\.js'/);
});

test('resolves only the exported entries at run time, from require and import', () => {
  expect(compiled).toBe(true);
  const r = run('resolve', process.execPath, ['resolve.cjs'], app, 20_000, process.env);
  expect(r.status).toBe(0);
  expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({
    deepRequire: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    deepImport: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    testing: 'function',
    packageJson: 'catga-cluster',
    esmNamed: { CatgaClusterModule: 'function', ForwardToLeader: 'function', ClusterCoordinator: 'function' },
  });
});

test("the package's bin is linked and runs", () => {
  expect(compiled).toBe(true);
  const r = run('bin', join(app, 'node_modules/.bin/catga-cluster'), ['--help'], app, 20_000, process.env);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(r.stdout).toMatch(/^Usage: catga-cluster /);
});

test('three nodes start, and a command sent to a follower runs on the leader', async () => {
  expect(compiled).toBe(true);
  const ports = await freePorts(6);
  const ids = ['p1', 'p2', 'p3'];
  const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[3 + i]}`).join(',');
  const started = Date.now();
  const nodes = ids.map((id, i) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('CATGA_')) delete env[k];
    Object.assign(env, { PORT: String(ports[i]), CATGA_NODE_ID: id, CATGA_MEMBERS: members, CATGA_DATA_DIR: join(work, 'data', id), CATGA_SECRET: 'packed-app-secret' });
    const proc = spawn(process.execPath, ['dist/main.js'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    const node = { id, port: ports[i]!, proc, out: '', exited: new Promise<void>((r) => proc.once('exit', () => r())) };
    proc.stdout!.on('data', (b: Buffer) => (node.out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (node.out += b.toString()));
    return node;
  });
  const deadline = Date.now() + 30_000;
  for (const n of nodes) {
    while (!n.out.includes('"ready":true')) {
      if (n.proc.exitCode !== null || Date.now() > deadline) throw new Error(`${n.id} did not start (exit ${n.proc.exitCode}):\n${n.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(JSON.parse(n.out.split('\n').find((l) => l.includes('"ready":true'))!)).toEqual({ ready: true, port: n.port, nodeId: n.id, dataDir: join(work, 'data', n.id) });
  }
  timings.start = Date.now() - started;

  const leaderSeenBy = async (n: (typeof nodes)[number]): Promise<string | null> => {
    const r = await fetch(`http://127.0.0.1:${n.port}/cluster/status`, { signal: AbortSignal.timeout(3000) });
    return ((await r.json()) as { leaderId: string | null }).leaderId;
  };
  let leader: string | null = null;
  while (leader === null) {
    if (Date.now() > deadline) throw new Error(`no leader all three agree on:\n${nodes.map((n) => n.out).join('\n')}`);
    const seen = await Promise.all(nodes.map(leaderSeenBy));
    if (seen[0] && seen.every((x) => x === seen[0])) leader = seen[0];
    else await new Promise((r) => setTimeout(r, 100));
  }
  const followers = nodes.filter((n) => n.id !== leader);
  const post = async (n: (typeof nodes)[number], customer: string) => {
    const r = await fetch(`http://127.0.0.1:${n.port}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customer }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: r.status, body: (await r.json()) as unknown };
  };
  expect(await post(followers[0]!, 'ada')).toEqual({ status: 201, body: { orderNo: 1, customer: 'ada', ranOn: leader } });
  expect(await post(followers[1]!, 'bob')).toEqual({ status: 201, body: { orderNo: 2, customer: 'bob', ranOn: leader } });

  const stopping = Date.now();
  for (const n of nodes) n.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    Promise.all(nodes.map((n) => n.exited)).then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 15_000))),
  ]);
  clearTimeout(timer);
  timings.stop = Date.now() - stopping;
  expect(stopped).toBe(true);
});

/** The scratch app: what a user writes, importing only the package's documented entries. */
const APP_FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'catga-packed-app', version: '1.0.0', private: true }, null, 2),
  'tsconfig.json': JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'node20',
        lib: ['ES2023'],
        types: ['node'],
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        // The package's declarations (and those of what they import) are checked too.
        skipLibCheck: false,
        noEmitOnError: true,
        rootDir: 'src',
        outDir: 'dist',
      },
      include: ['src'],
    },
    null,
    2,
  ),
  'tsconfig.internal.json': JSON.stringify({ extends: './tsconfig.json', compilerOptions: { rootDir: 'internal', noEmit: true }, include: ['internal'] }, null, 2),
  'src/app.module.ts': `import { Body, Controller, Module, Post } from '@nestjs/common';
import { Command, CommandBus, CommandHandler, CqrsModule, type ICommandHandler } from '@nestjs/cqrs';
import { CatgaClusterModule, ClusterCoordinator, ForwardToLeader } from 'catga-cluster';

export interface Placed {
  readonly orderNo: number;
  readonly customer: string;
  readonly ranOn: string;
}

export class PlaceOrder extends Command<Placed> {
  constructor(readonly customer: string) {
    super();
  }
}

/** Runs on the leader whichever node took the request; numbers orders through the replicated store. */
@CommandHandler(PlaceOrder)
@ForwardToLeader()
export class PlaceOrderHandler implements ICommandHandler<PlaceOrder, Placed> {
  constructor(private readonly cluster: ClusterCoordinator) {}

  async execute(command: PlaceOrder): Promise<Placed> {
    const { version } = await this.cluster.store.put('orders/last', command.customer);
    return { orderNo: version, customer: command.customer, ranOn: this.cluster.nodeId };
  }
}

@Controller('orders')
export class OrdersController {
  constructor(private readonly commands: CommandBus) {}

  @Post()
  place(@Body() body: { customer: string }): Promise<Placed> {
    return this.commands.execute(new PlaceOrder(body.customer));
  }
}

@Module({
  imports: [
    CqrsModule.forRoot(),
    // The members, this node's id, its dataDir and the secret come from CATGA_*.
    CatgaClusterModule.forRoot({ fromEnv: true, statusPath: true }),
  ],
  controllers: [OrdersController],
  providers: [PlaceOrderHandler],
})
export class AppModule {}
`,
  'src/main.ts': `import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { resolveClusterOptions } from 'catga-cluster/testing';
import { AppModule } from './app.module.js';

async function bootstrap(): Promise<void> {
  const port = Number(process.env.PORT);
  // The one import from catga-cluster/testing: the options as this node resolves them.
  const { nodeId, dataDir } = resolveClusterOptions({ fromEnv: true });
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(port, '127.0.0.1');
  console.log(JSON.stringify({ ready: true, port, nodeId, dataDir }));
}

bootstrap().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
`,
  // Outside src: compiled on its own, expected to fail.
  'internal/deep.ts': `import { resolveClusterOptions } from 'catga-cluster/dist/lib/cluster/options.js';
export const options = resolveClusterOptions({});
`,
  'resolve.cjs': `const out = {};
try { require('catga-cluster/dist/lib/cluster/options.js'); out.deepRequire = 'loaded'; } catch (e) { out.deepRequire = e.code; }
out.testing = typeof require('catga-cluster/testing').resolveClusterOptions;
out.packageJson = require('catga-cluster/package.json').name;
import('catga-cluster/dist/lib/cluster/options.js')
  .then(() => 'loaded', (e) => e.code)
  .then((code) => { out.deepImport = code; return import('catga-cluster'); })
  .then((m) => {
    out.esmNamed = { CatgaClusterModule: typeof m.CatgaClusterModule, ForwardToLeader: typeof m.ForwardToLeader, ClusterCoordinator: typeof m.ClusterCoordinator };
    console.log(JSON.stringify(out));
  });
`,
};
