import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/**
 * prom-client and @nestjs/terminus are optional peers: the built package must load, boot and serve without them. The
 * check runs the compiled library (dist/lib) in a directory whose node_modules has every installed package but those
 * two, so `require` really cannot find them.
 */

jest.setTimeout(60_000);

const ROOT = resolve(__dirname, '../..');
const DIST = join(ROOT, 'dist/lib');
const ABSENT = ['prom-client', '@nestjs/terminus'];

beforeAll(() => {
  if (!existsSync(join(DIST, 'index.js'))) throw new Error(`${DIST} is missing: run npm run build first`);
});

test("the package's declarations never reach prom-client or terminus types", () => {
  const seen = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\()\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.d.ts')));
      else bare.add(spec);
    }
  };
  visit(join(DIST, 'index.d.ts'));
  expect(seen.size).toBeGreaterThan(20);
  expect([...bare]).toContain('@nestjs/common');
  for (const name of ABSENT) expect([...bare]).not.toContain(name);
});

describe('without prom-client and @nestjs/terminus installed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'catga-no-peers-'));
  const PORT = 18840;

  beforeAll(() => {
    cpSync(DIST, join(dir, 'dist/lib'), { recursive: true });
    const modules = join(dir, 'node_modules');
    mkdirSync(join(modules, '@nestjs'), { recursive: true });
    for (const name of readdirSync(join(ROOT, 'node_modules'))) {
      if (name === '.bin' || name === '@nestjs' || name.startsWith('.') || ABSENT.includes(name)) continue;
      symlinkSync(join(ROOT, 'node_modules', name), join(modules, name));
    }
    for (const name of readdirSync(join(ROOT, 'node_modules/@nestjs'))) {
      if (!ABSENT.includes(`@nestjs/${name}`)) symlinkSync(join(ROOT, 'node_modules/@nestjs', name), join(modules, '@nestjs', name));
    }
    writeFileSync(join(dir, 'main.js'), APP);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (metrics: string) => {
    const r = spawnSync(process.execPath, [join(dir, 'main.js'), metrics], {
      cwd: dir,
      env: { ...process.env, DATA: join(dir, `data-${metrics}`), PORT: String(PORT) },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as Record<string, any>;
    } catch {
      throw new Error(`the app printed no result (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
  };

  test('the module boots with metrics left to the default, serves status and page, and reports health', () => {
    const r = run('default');
    expect(r).toMatchObject({ resolvable: { 'prom-client': false, '@nestjs/terminus': false } });
    expect(r.status).toMatchObject({ nodeId: 'solo', isLeader: true, leaderId: 'solo' });
    expect(r.page).toContain('data-status="status"');
    expect(r.health).toEqual({ cluster: { status: 'up', nodeId: 'solo', role: 'leader', leaderId: 'solo', term: expect.any(Number) } });
  });

  test('metrics: true fails at bootstrap, saying what is missing', () => {
    const r = run('true');
    expect(r.name).toBe('ClusterOptionsError');
    expect(r.error).toMatch(/option metrics: expected prom-client to be installed/);
  });
});

/** A single-member app of the compiled library; prints one JSON line. */
const APP = `
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { CqrsModule } = require('@nestjs/cqrs');
const lib = require('./dist/lib/index.js');

const resolvable = {};
for (const name of ${JSON.stringify(ABSENT)}) {
  try { require.resolve(name); resolvable[name] = true; } catch { resolvable[name] = false; }
}

async function main() {
  const quiet = { log() {}, warn() {}, error() {} };
  const options = { nodeId: 'solo', dataDir: process.env.DATA, logger: quiet, statusPath: true, pagePath: true };
  if (process.argv[2] === 'true') options.metrics = true;
  class AppModule {}
  Module({ imports: [CqrsModule.forRoot(), lib.CatgaClusterModule.forRoot(options)] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  await app.listen(Number(process.env.PORT), '127.0.0.1');
  try {
    const base = 'http://127.0.0.1:' + process.env.PORT;
    const status = await (await fetch(base + '/cluster/status')).json();
    const page = await (await fetch(base + '/cluster')).text();
    const health = app.get(lib.ClusterHealthIndicator).isHealthy();
    console.log(JSON.stringify({ resolvable, status, page, health }));
  } finally {
    await app.close();
  }
}
main().catch((e) => {
  console.log(JSON.stringify({ resolvable, name: e.name, error: e.message }));
  process.exitCode = 1;
});
`;
