/**
 * Arrows point down only (docs/architecture.md, Layers): each folder of lib/ imports only from the layers below it.
 * Read from the sources, so a new import across the line fails here rather than in a review.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const LIB = resolve(__dirname, '../lib');

/** What each folder may import from lib/ (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  raft: [],
  io: ['raft'],
  storage: ['raft', 'io'],
  transport: ['raft', 'io'],
  cluster: ['raft', 'io', 'storage', 'transport'],
  nest: ['raft', 'io', 'storage', 'transport', 'cluster'],
  cli: ['raft', 'io', 'storage', 'transport', 'cluster'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

test('every folder of lib/ imports only from the layers below it', () => {
  const crossings: string[] = [];
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    for (const file of files(join(LIB, layer))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = relative(LIB, resolve(file, '..', m[1]!)).split('/')[0]!;
        if (target !== layer && target in ALLOWED && !allowed.includes(target)) crossings.push(`${relative(LIB, file)} imports ${m[1]}`);
      }
    }
  }
  expect(crossings).toEqual([]);
});

test('the layer table covers every folder of lib/', () => {
  const folders = readdirSync(LIB).filter((n) => statSync(join(LIB, n)).isDirectory());
  expect(folders.sort()).toEqual(Object.keys(ALLOWED).sort());
});

/** Imports of lib/ files from `file`, as paths relative to lib/. */
function importsOf(file: string, dynamic: boolean): string[] {
  const pattern = dynamic ? /(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g : /from\s*'(\.{1,2}\/[^']+)'/g;
  return [...readFileSync(file, 'utf8').matchAll(pattern)].map((m) => relative(LIB, resolve(file, '..', m[1]!)));
}

test('nothing above the backend seam knows which backend runs, and only a dynamic import loads the etcd one', () => {
  const offenders: string[] = [];
  for (const file of [...files(join(LIB, 'nest')), ...files(join(LIB, 'cli'))]) {
    for (const target of importsOf(file, true)) {
      if (target.startsWith('cluster/embedded/') || target.startsWith('cluster/etcd/')) offenders.push(`${relative(LIB, file)} imports ${target}`);
    }
  }
  // The embedded backend and the shared parts never reach into etcd/; create-cluster loads it with import() only.
  for (const file of files(join(LIB, 'cluster')).filter((f) => !relative(LIB, f).startsWith('cluster/etcd/'))) {
    for (const target of importsOf(file, false)) if (target.startsWith('cluster/etcd/')) offenders.push(`${relative(LIB, file)} imports ${target}`);
  }
  expect(offenders).toEqual([]);
});
