import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { npmEnv } from './npm-env.js';

/**
 * What `npm pack` would publish: the compiled library, its declarations, README, LICENSE and package.json, nothing
 * from the tests, benchmarks or sample, no TypeScript sources and no source maps (see docs/architecture.md, Package),
 * every target package.json points at, and a size budget. Reads the file list from `npm pack --dry-run --json`, so
 * it needs `npm run build` first and writes nothing.
 */

jest.setTimeout(60_000);

const ROOT = resolve(__dirname, '../..');

/**
 * Measured at 250 kB packed / 863 kB unpacked (237 files). The budget leaves room to grow by about 40 %; reaching it
 * means something large got in (source maps, a fixture, another build) or the library really grew: look, then
 * raise it on purpose.
 */
const MAX_PACKED_BYTES = 350_000;
const MAX_UNPACKED_BYTES = 1_250_000;

interface PackedFile {
  readonly path: string;
  readonly size: number;
  readonly mode: number;
}
interface PackResult {
  readonly size: number;
  readonly unpackedSize: number;
  readonly entryCount: number;
  readonly files: readonly PackedFile[];
}

let pack: PackResult;
let paths: string[];
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, any>;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/lib/index.js'))) throw new Error('dist/lib is missing: run npm run build first');
  const started = Date.now();
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    env: npmEnv(),
    encoding: 'utf8',
    timeout: 45_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`npm pack --dry-run failed (exit ${r.status}, ${r.error?.message ?? r.signal ?? ''}):\n${r.stderr}`);
  pack = (JSON.parse(r.stdout) as PackResult[])[0]!;
  paths = pack.files.map((f) => f.path);
  const kb = (n: number) => `${(n / 1000).toFixed(1)} kB`;
  console.log(
    `npm pack: ${pack.entryCount} files, ${kb(pack.size)} packed (budget ${kb(MAX_PACKED_BYTES)}), ` +
      `${kb(pack.unpackedSize)} unpacked (budget ${kb(MAX_UNPACKED_BYTES)}); dry run took ${Date.now() - started} ms`,
  );
});

test('holds README, LICENSE, package.json and the compiled library, nothing else', () => {
  for (const name of ['README.md', 'LICENSE', 'package.json']) expect(paths).toContain(name);
  const outside = paths.filter((p) => !p.startsWith('dist/lib/') && !['README.md', 'LICENSE', 'package.json'].includes(p));
  expect(outside).toEqual([]);
  expect(paths.filter((p) => /(^|\/)(test|tests|bench|sample|__tests__)\//.test(p) || /\.(spec|test)\.[cm]?[jt]s$/.test(p))).toEqual([]);
});

test('no TypeScript sources but declarations, and no source maps', () => {
  expect(paths.filter((p) => /\.[cm]?ts$/.test(p) && !/\.d\.[cm]?ts$/.test(p))).toEqual([]);
  expect(paths.filter((p) => p.endsWith('.map'))).toEqual([]);
  // Nor a pointer to one: tools such as source-map-loader warn about every map they cannot find.
  const pointing = paths.filter((p) => p.endsWith('.js') && readFileSync(join(ROOT, p), 'utf8').includes('sourceMappingURL'));
  expect(pointing).toEqual([]);
  expect(paths.filter((p) => p.endsWith('.js')).length).toBeGreaterThan(50);
  expect(paths.filter((p) => p.endsWith('.d.ts')).length).toBeGreaterThan(50);
});

test('every compiled file comes from a source in lib/ (no stale output of a deleted source)', () => {
  const stale = paths
    .filter((p) => p.startsWith('dist/lib/'))
    .map((p) => p.replace(/^dist\//, '').replace(/\.d\.ts$|\.js$/, '.ts'))
    .filter((src) => !existsSync(join(ROOT, src)));
  expect(stale).toEqual([]);
});

test('every target package.json names is in the package: exports, main, types, bin', () => {
  const targets = new Set<string>();
  const collect = (v: unknown): void => {
    if (typeof v === 'string') targets.add(v.replace(/^\.\//, ''));
    else if (v && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect(pkg.exports);
  collect(pkg.main);
  collect(pkg.types);
  collect(pkg.bin);
  expect([...targets]).toEqual(expect.arrayContaining(['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/testing.js', 'dist/lib/testing.d.ts', 'package.json']));
  expect([...targets].filter((t) => !paths.includes(t))).toEqual([]);
  // Only the documented entries are open: the root, /testing, and package.json.
  expect(Object.keys(pkg.exports).sort()).toEqual(['.', './package.json', './testing']);
  for (const bin of Object.values<string>(pkg.bin ?? {})) {
    expect(readFileSync(join(ROOT, bin), 'utf8').startsWith('#!/usr/bin/env node')).toBe(true);
  }
});

test('the metadata a registry page and an installer read', () => {
  expect(pkg.license).toBe('MIT');
  expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} catga-cluster contributors\n/);
  expect(pkg.repository).toEqual({ type: 'git', url: 'git+https://github.com/catga/catga-cluster.git' });
  expect(pkg.bugs).toEqual({ url: 'https://github.com/catga/catga-cluster/issues' });
  expect(pkg.homepage).toBe('https://github.com/catga/catga-cluster#readme');
  expect(pkg.engines).toEqual({ node: '^20.19.0 || >=22.12.0' });
  // Every peer has an upper bound: a caret range, or an explicit `<`.
  for (const [name, range] of Object.entries<string>(pkg.peerDependencies)) {
    expect([name, /^\^\d|<\s*\d/.test(range)]).toEqual([name, true]);
  }
  // @nestjs/cqrs is required (docs/architecture.md, Dependencies); the others the module loads lazily or not at all.
  expect(Object.keys(pkg.peerDependenciesMeta).sort()).toEqual(['@nestjs/schedule', '@nestjs/terminus', 'cockatiel', 'etcd3', 'prom-client']);
});

test(`stays within the size budget`, () => {
  expect(pack.size).toBeLessThan(MAX_PACKED_BYTES);
  expect(pack.unpackedSize).toBeLessThan(MAX_UNPACKED_BYTES);
});
