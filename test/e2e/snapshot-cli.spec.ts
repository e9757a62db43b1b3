/**
 * `catga-cluster snapshot save|restore|status` (the built CLI, dist/lib/cli/main.js) against real node processes on
 * 127.0.0.1: acknowledged writes, a snapshot saved from a running follower, every node killed and its data dir wiped,
 * the same snapshot restored into all three data dirs, and the cluster back with every acknowledged key on every node,
 * a leader, and new writes; writes made while the snapshot is taken land on the side of its index their revision says.
 * Then nodes with mutual TLS (in this process): save needs a client certificate. Needs `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import type { StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import { createCluster } from '../../lib/cluster/create-cluster.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import type { ReadKeysResult, WriteLoadResult } from '../support/node-protocol.js';
import { ProcessCluster, assertBuilt, type NodeProcess } from '../support/process-cluster.js';
import { freePorts } from '../transport/helpers.js';
import { haveOpenssl, makeCerts } from '../transport/test-certs.js';

jest.setTimeout(90_000);

const CLI = resolve(__dirname, '../../dist/lib/cli/main.js');
const SECRET = 'snapshot-cli-e2e-secret';

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI as a child process, bounded; never rejects. */
function cli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

let cluster: ProcessCluster;
let work: string;
let addresses: string[];
/** Every key whose write was acknowledged, and the values of a few with known content. */
const acked: string[] = [];
const known: Record<string, unknown> = { 'cli/a': { n: 1, s: 'one' }, 'cli/b': [1, 2, 3], 'cli/c': 'three' };

beforeAll(async () => {
  assertBuilt();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  work = mkdtempSync(join(tmpdir(), 'catga-snapshot-cli-'));
  const ports = await freePorts(3);
  // Compaction every 50 entries: the nodes hold snapshots and a log tail, as in production.
  cluster = new ProcessCluster({ ports, secret: SECRET, env: { CATGA_COMPACTION: '50' } });
  addresses = cluster.members.map((m) => m.split('=')[1]!);
  await cluster.start();
});

afterAll(async () => {
  await cluster?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

const dataDir = (n: NodeProcess) => join(cluster.dataRoot, n.id);

async function missingOn(node: NodeProcess, keys: readonly string[]): Promise<string[]> {
  return (await node.request<ReadKeysResult>({ op: 'readKeys', keys, consistency: 'linearizable' }, 30_000)).missing;
}

test('the CLI answers --help, and refuses bad usage with exit code 2', async () => {
  const help = await cli(['--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toMatch(/snapshot save <file>/);
  const saveHelp = await cli(['snapshot', 'save', '--help']);
  expect(saveHelp).toMatchObject({ code: 0, stdout: expect.stringMatching(/linearizable point/) });
  expect((await cli(['snapshot', 'frobnicate'])).code).toBe(2);
  const noSecret = await cli(['snapshot', 'save', join(work, 'x.snap'), '--address', addresses[0]!]);
  expect(noSecret.code).toBe(2);
  expect(noSecret.stderr).toMatch(/no cluster secret/);
  expect((await cli(['snapshot', 'save', join(work, 'x.snap'), '--adress', 'x'])).stderr).toMatch(/unknown option --adress/);
});

test('save, kill all three, wipe, restore into each, restart: every acknowledged write is back on every node', async () => {
  const leader = await cluster.leader(10_000);
  const follower = cluster.nodes.find((n) => n !== leader)!;
  // Acknowledged writes from every node (followers forward to the leader), well past several compactions.
  const loads = await Promise.all(
    cluster.nodes.map((n) =>
      n.request<WriteLoadResult>({ op: 'writeLoad', writers: 4, durationMs: 3000, keyPrefix: `load-${n.id}-`, maxWrites: 150 }, 30_000),
    ),
  );
  for (const r of loads) acked.push(...r.acked);
  for (const [key, value] of Object.entries(known)) {
    await follower.request<WriteResult>({ op: 'put', key, value });
    acked.push(key);
  }
  expect(acked.length).toBeGreaterThan(300);

  // Saved from a follower: it confirms the read point with the leader, so the snapshot holds every write above. Writes
  // go on meanwhile; each lands on one side of the snapshot's index by its revision (its log index).
  const file = join(work, 'backup.snap');
  const followerAddress = addresses[cluster.nodes.indexOf(follower)]!;
  let saving = true;
  const during: { key: string; revision: number }[] = [];
  let duringFailed = 0;
  const writer = (async () => {
    for (let i = 0; saving; i++) {
      const key = `during-${i}`;
      await leader.request<WriteResult>({ op: 'put', key, value: i }).then(
        (r) => during.push({ key, revision: r.revision }),
        () => duringFailed++,
      );
    }
  })();
  const saved = await cli(['snapshot', 'save', file, '--address', followerAddress], { CATGA_SECRET: SECRET });
  saving = false;
  await writer;
  expect(saved).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`saved the snapshot of ${follower.id}`)) });
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const again = await cli(['snapshot', 'save', file, '--address', followerAddress], { CATGA_SECRET: SECRET });
  expect(again.code).toBe(3); // the file exists
  expect(again.stderr).toMatch(/exists; remove it or pass --force/);

  const fileStatus = await cli(['snapshot', 'status', file, '--json']);
  expect(fileStatus.code).toBe(0);
  const snap = JSON.parse(fileStatus.stdout) as { kind: string; index: number; term: number; keys: number; members: { id: string }[] };
  expect(snap.kind).toBe('file');
  // One index: the concurrent writes at or below it are in, those after it are not.
  const inside = during.filter((w) => w.revision <= snap.index).map((w) => w.key);
  const outside = during.filter((w) => w.revision > snap.index).map((w) => w.key);
  expect(during.length).toBeGreaterThan(0);
  if (duringFailed === 0) expect(snap.keys).toBe(acked.length + inside.length);
  expect(snap.members.map((m) => m.id).sort()).toEqual(cluster.nodes.map((n) => n.id).sort());
  const before = await follower.status();
  expect(snap.index).toBeLessThanOrEqual(before.appliedIndex);
  expect(snap.index).toBeGreaterThan(acked.length); // one entry per write, at least

  // A running node's data dir is locked: status refuses it rather than read a log being written.
  const busy = await cli(['snapshot', 'status', dataDir(leader)]);
  expect(busy.code).toBe(3);
  expect(busy.stderr).toMatch(/in use by process/);

  for (const n of cluster.nodes) await n.signal('SIGKILL');
  // A stopped node's data dir: its recorded state, and a restore into it is refused (not empty).
  const dirStatus = await cli(['snapshot', 'status', dataDir(leader), '--json']);
  expect(dirStatus.code).toBe(0);
  expect(JSON.parse(dirStatus.stdout)).toMatchObject({ kind: 'dataDir', members: expect.any(Array) });
  const refused = await cli(['snapshot', 'restore', file, dataDir(leader)]);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toMatch(/is not empty/);

  for (const n of cluster.nodes) {
    rmSync(dataDir(n), { recursive: true, force: true });
    const r = await cli(['snapshot', 'restore', file, dataDir(n), '--node-id', n.id]);
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`restored the snapshot at index ${snap.index}`)) });
  }
  const restored = JSON.parse((await cli(['snapshot', 'status', dataDir(leader), '--json'])).stdout);
  expect(restored).toMatchObject({ kind: 'dataDir', snapshot: { index: snap.index, term: snap.term }, state: { keys: snap.keys } });
  expect(restored.hardState).toEqual({ term: snap.term, vote: '', commit: snap.index });

  await cluster.start();
  for (const n of cluster.nodes) {
    const boot = await n.request<RuntimeStatus>({ op: 'bootStatus' });
    expect({ id: n.id, applied: boot.appliedIndex, snapshot: boot.snapshotIndex }).toEqual({ id: n.id, applied: snap.index, snapshot: snap.index });
  }
  const next = await cluster.leader(10_000);
  for (const n of cluster.nodes) {
    expect({ node: n.id, missing: await missingOn(n, [...acked, ...inside]) }).toEqual({ node: n.id, missing: [] });
    expect({ node: n.id, present: outside.length - (await missingOn(n, outside)).length }).toEqual({ node: n.id, present: 0 });
  }
  for (const n of cluster.nodes) {
    for (const [key, value] of Object.entries(known)) {
      const e = await n.request<StoreEntry | null>({ op: 'get', key, consistency: 'linearizable' });
      expect({ node: n.id, key, value: e?.value }).toEqual({ node: n.id, key, value });
    }
  }

  // The restored cluster takes writes, from the leader and through a follower, and replicates them everywhere.
  const after = await next.request<WriteResult>({ op: 'put', key: 'after-restore', value: 'yes' });
  expect(after.revision).toBeGreaterThan(snap.index);
  await cluster.nodes.find((n) => n !== next)!.request<WriteResult>({ op: 'put', key: 'after-restore-2', value: 'yes' });
  for (const n of cluster.nodes) expect(await missingOn(n, ['after-restore', 'after-restore-2'])).toEqual([]);
  const term = (await next.status()).term;
  expect(term).toBeGreaterThan(snap.term);
});

test('save fails clearly, with exit code 1, on a wrong secret and on an address nobody listens at', async () => {
  const target = join(work, 'never.snap');
  const wrong = await cli(['snapshot', 'save', target, '--address', addresses[0]!, '--timeout', '5'], { CATGA_SECRET: 'not-the-cluster-secret' });
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toMatch(/n1 failed authentication \(its MAC does not match: are the secrets the same\?\)/);
  const [unused] = await freePorts(1);
  const nobody = await cli(['snapshot', 'save', target, '--address', `127.0.0.1:${unused}`, '--timeout', '5'], { CATGA_SECRET: SECRET });
  expect(nobody.code).toBe(1);
  expect(nobody.stderr).toMatch(/cannot reach 127\.0\.0\.1/);
  expect(existsSync(target)).toBe(false);
  // The secret from a file, as in a compose secret (its trailing newline ignored), and the first address down.
  const secretFile = join(work, 'secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  const viaFile = await cli(['snapshot', 'save', target, '--address', `127.0.0.1:${unused}`, '--address', addresses.join(','), '--secret-file', secretFile]);
  expect(viaFile.code).toBe(0);
  expect(viaFile.stderr).toMatch(/cannot reach .*; trying the next address/);
  // During a rotation, the CLI accepts a member proving any of its secrets (as a dialing member does).
  const otherFile = join(work, 'other-secret');
  writeFileSync(otherFile, 'the-next-secret-0123\n');
  const rotating = await cli(['snapshot', 'save', target, '--force', '--address', addresses[2]!, '--secret-file', otherFile, '--secret-file', secretFile]);
  expect(rotating.code).toBe(0);
  expect((await cli(['snapshot', 'save', target, '--force', '--address', addresses[2]!, '--secret-file', otherFile, '--timeout', '5'])).code).toBe(1);
});

test('restore refuses a file that is not a snapshot, and an id that is not a member', async () => {
  const junk = join(work, 'junk.snap');
  writeFileSync(junk, 'hello, not a snapshot');
  const dir = join(work, 'empty-dir');
  mkdirSync(dir);
  const notSnap = await cli(['snapshot', 'restore', junk, dir]);
  expect(notSnap.code).toBe(1);
  expect(notSnap.stderr).toMatch(/does not start with CATGASNP/);
  const stranger = await cli(['snapshot', 'restore', join(work, 'backup.snap'), dir, '--node-id', 'n9']);
  expect(stranger.code).toBe(3);
  expect(stranger.stderr).toMatch(/n9 is not a member/);
  expect(readdirSync(dir)).toEqual([]);
  expect((await cli(['snapshot', 'status', dir])).stdout).toMatch(/an empty data dir/);
});

(haveOpenssl ? describe : describe.skip)('with mutual TLS', () => {
  let nodes: ClusterCoordinator[] = [];
  let dir: string;

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('save needs a client certificate from the members\' CA, and works with one', async () => {
    dir = mkdtempSync(join(tmpdir(), 'catga-snapshot-tls-'));
    const ids = ['t1', 't2', 't3'];
    const certs = makeCerts(dir, [...ids, 'cli']);
    const ports = await freePorts(3);
    const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
    const silent = { log: () => undefined, warn: () => undefined, error: () => undefined };
    nodes = await Promise.all(
      ids.map((id) => {
        const pem = certs.nodes.get(id)!;
        return createCluster({ nodeId: id, members, dataDir: join(dir, id), secret: SECRET, tls: { key: pem.key, cert: pem.cert, ca: certs.ca }, logger: silent });
      }),
    );
    await nodes[0]!.waitForLeader({ timeout: 10_000 });
    for (let i = 0; i < 20; i++) await nodes[i % 3]!.store.put(`tls-${i}`, i);

    const file = join(dir, 'tls.snap');
    const address = members[1]!.split('=')[1]!;
    const env = { CATGA_SECRET: SECRET };
    const noCert = await cli(['snapshot', 'save', file, '--address', address, '--timeout', '5'], env);
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toMatch(/if the members use TLS, give --tls-ca, --tls-cert and --tls-key/);
    expect(existsSync(file)).toBe(false);
    const tlsArgs = ['--tls-ca', join(dir, 'ca.crt'), '--tls-cert', join(dir, 'cli.crt'), '--tls-key', join(dir, 'cli.key')];
    expect((await cli(['snapshot', 'save', file, '--address', address, '--tls-ca', join(dir, 'ca.crt')], env)).stderr).toMatch(/go together/);
    const ok = await cli(['snapshot', 'save', file, '--address', address, ...tlsArgs], env);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/saved the snapshot of t2/) });
    const status = JSON.parse((await cli(['snapshot', 'status', file, '--json'])).stdout);
    expect(status).toMatchObject({ kind: 'file', keys: 20 });
  });
});
