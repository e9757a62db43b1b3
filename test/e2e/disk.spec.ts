/**
 * Hostile disks under real node processes (ports 18710–18715): a member whose dataDir sits on a small tmpfs that
 * fills up, a WAL damaged in the middle, and a dataDir a second process tries to use. Needs `npm run build` first;
 * the full-disk test needs permission to mount a tmpfs (root or CAP_SYS_ADMIN) and is skipped, saying so, without it
 * (test/storage/full-disk-cluster.spec.ts covers the same behaviour in-process on any machine).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { WriteResult } from '../../lib/cluster/cluster-store.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import { decodeRecords } from '../../lib/storage/record.js';
import type { ReadKeysResult, WriteLoadResult } from '../support/node-protocol.js';
import { NodeProcess, ProcessCluster, assertBuilt, sleep, waitUntil } from '../support/process-cluster.js';

jest.setTimeout(60_000);

const TMPFS_BYTES = 8 * 1024 * 1024;

/** Mounts a tmpfs of `bytes` at a new temp dir; null (and why) when this process may not mount. */
function mountTmpfs(bytes: number): { dir: string } | { reason: string } {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'catga-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status === 0) return { dir };
  fs.rmdirSync(dir);
  return { reason: (r.stderr || r.error?.message || `mount exited with ${r.status}`).trim() };
}

function unmount(dir: string): void {
  spawnSync('umount', ['-l', dir]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Writes a filler file until the file system refuses more (ENOSPC); returns its path and size. */
function fill(dir: string): { file: string; bytes: number } {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0xaa);
  let bytes = 0;
  try {
    for (let n = chunk.length; n > 0; ) {
      try {
        bytes += fs.writeSync(fd, chunk, 0, n);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        n >>= 1; // the last pages: smaller writes until not a byte fits
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return { file, bytes };
}

const probe = mountTmpfs(4096 * 16);
if ('dir' in probe) unmount(probe.dir);
else console.warn(`disk.spec: cannot mount a tmpfs (${probe.reason}); skipping the real full-disk test`);

const status = (n: NodeProcess): Promise<RuntimeStatus> => n.status(5000);
const matchOf = (s: RuntimeStatus, id: string): number => s.members.find((m) => m.id === id)?.matchIndex ?? -1;

async function missingOn(node: NodeProcess, keys: readonly string[]): Promise<string[]> {
  return (await node.request<ReadKeysResult>({ op: 'readKeys', keys, consistency: 'linearizable' }, 20_000)).missing;
}

('dir' in probe ? describe : describe.skip)('a member whose disk fills up (real tmpfs)', () => {
  let cluster: ProcessCluster;
  let mount = '';
  const acked: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    const m = mountTmpfs(TMPFS_BYTES);
    if (!('dir' in m)) throw new Error(`mounting the tmpfs failed after the probe worked: ${m.reason}`);
    mount = m.dir;
    // n3 logs at info level too, to show that it resumed.
    cluster = new ProcessCluster({ basePort: 18710, nodeEnv: { n3: { CATGA_DATA_DIR: path.join(mount, 'n3'), CATGA_QUIET: '' } } });
    await cluster.start();
  });

  afterAll(async () => {
    await cluster?.destroy();
    if (mount) unmount(mount);
  });

  async function load(on: NodeProcess, prefix: string, ms: number): Promise<WriteLoadResult> {
    const r = await on.request<WriteLoadResult>({ op: 'writeLoad', writers: 4, durationMs: ms, keyPrefix: prefix }, 30_000);
    acked.push(...r.acked);
    return r;
  }

  test('a full follower acknowledges nothing while the others commit, and catches up once space is freed', async () => {
    const n3 = cluster.node('n3');
    let leader = await cluster.leader(5000);
    if (leader === n3) {
      await n3.request({ op: 'transfer', to: 'n1' });
      leader = await cluster.leader(5000, cluster.nodes.slice(0, 2));
    }
    await load(leader, 'before-', 500);

    const filler = fill(mount);
    // Whatever still fits in the WAL's last partly used page goes in; then n3's appends fail with ENOSPC.
    const loading = load(leader, 'during-follower-full-', 3000);
    await waitUntil('n3 to report the full disk', 10_000, async () => (n3.output.includes('disk full:') ? true : undefined));
    await sleep(200);
    const atFull = matchOf(await status(leader), 'n3');
    const during = await loading;
    const s = await status(leader);
    const s3 = await status(n3);
    expect(during.errors).toBe(0);
    expect(during.acked.length).toBeGreaterThan(100);
    expect(matchOf(s, 'n3')).toBe(atFull); // n3 acknowledged nothing more
    expect(s3.appliedIndex).toBeLessThanOrEqual(atFull);
    expect(s.commitIndex - s3.appliedIndex).toBeGreaterThan(100);
    expect(n3.output.match(/disk full: /g)).toHaveLength(1);
    expect(n3.output).toMatch(/ENOSPC.*disk is full.*acknowledges nothing/);

    fs.unlinkSync(filler.file);
    const commit = (await status(leader)).commitIndex;
    await waitUntil('n3 to catch up after space was freed', 15_000, async () => ((await status(n3)).appliedIndex >= commit ? true : undefined));
    expect(n3.output).toMatch(/disk space is back/);
    expect(n3.running).toBe(true);
    console.log(`e2e full follower: filled ${filler.bytes} bytes of the ${TMPFS_BYTES}-byte tmpfs; ${during.acked.length} writes committed without n3 (its match index held at ${atFull}); n3 caught up to ${commit} after the space came back`);
  });

  test('a full leader loses leadership to the others, who keep committing; it rejoins once space is freed', async () => {
    const n3 = cluster.node('n3');
    const leader = await cluster.leader(5000);
    if (leader !== n3) await leader.request({ op: 'transfer', to: 'n3' });
    await waitUntil('n3 to lead', 5000, async () => ((await status(n3)).isLeader ? true : undefined));
    await load(n3, 'before-leader-full-', 300);

    const filler = fill(mount);
    // Writes on n3 fail (refused, or their outcome unknown when it loses leadership); none may be acknowledged.
    const onFull = n3.request<WriteLoadResult>({ op: 'writeLoad', writers: 2, durationMs: 2500, keyPrefix: 'on-full-leader-' }, 30_000);
    const next = await cluster.leader(10_000, cluster.nodes.slice(0, 2));
    const during = await load(next, 'during-leader-full-', 1500);
    const onFullResult = await onFull;
    acked.push(...onFullResult.acked);
    expect(during.acked.length).toBeGreaterThan(50);
    expect((await status(n3)).isLeader).toBe(false);

    fs.unlinkSync(filler.file);
    const commit = (await status(next)).commitIndex;
    await waitUntil('n3 to follow and catch up', 15_000, async () => {
      const s3 = await status(n3);
      return s3.leaderId === next.id && s3.appliedIndex >= commit ? true : undefined;
    });
    const w = await n3.request<WriteResult>({ op: 'put', key: 'via-n3-after-space', value: 1 });
    expect(w.version).toBe(1);
    acked.push('via-n3-after-space');
    console.log(
      `e2e full leader: ${next.id} took over; ${during.acked.length} writes committed meanwhile; on n3 ${onFullResult.acked.length} acknowledged ` +
        `(before its held write), errors ${JSON.stringify(onFullResult.errorNames)}`,
    );
  });

  test('every acknowledged write is readable on every node after kill -9 and restart of all three', async () => {
    expect(acked.length).toBeGreaterThan(300);
    for (const n of cluster.nodes) await n.signal('SIGKILL');
    for (const n of cluster.nodes) await n.start();
    await cluster.leader(10_000);
    for (const n of cluster.nodes) await n.request({ op: 'waitForLeader', timeout: 10_000 }, 15_000);
    for (const n of cluster.nodes) expect({ node: n.id, missing: await missingOn(n, acked) }).toEqual({ node: n.id, missing: [] });
  });
});

describe('a damaged WAL and a dataDir in use', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    assertBuilt();
    cluster = new ProcessCluster({ basePort: 18713 });
    await cluster.start();
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('a second process on a running node\'s dataDir refuses to start, naming the dataDir and the holder', async () => {
    const n1 = cluster.node('n1');
    const dataDir = path.join(cluster.dataRoot, 'n1');
    const twin = new NodeProcess('n1-twin', {
      CATGA_NODE_ID: 'n1',
      CATGA_MEMBERS: cluster.members.join(','),
      CATGA_DATA_DIR: dataDir,
      CATGA_SECRET: 'e2e-test-secret',
      CATGA_QUIET: '1',
    });
    await expect(twin.start()).rejects.toThrow(/n1-twin exited/);
    // stderr may arrive just after the exit event.
    await waitUntil('the twin to say why', 2000, async () => (twin.output.includes('failed to start') ? true : undefined));
    expect(twin.output).toContain(`failed to start: dataDir ${dataDir} is in use by process ${n1.pid}`);
    expect(twin.output).toMatch(/Stop that process or give this node another dataDir/);
    console.log(`e2e dataDir in use: ${twin.output.trim()}`);
    expect(twin.running).toBe(false);
    // The holder is untouched.
    const w = await n1.request<WriteResult>({ op: 'put', key: 'after-twin', value: 1 });
    expect(w.version).toBe(1);
  });

  test('a node whose WAL is damaged in the middle refuses to start, naming the file and the byte offset', async () => {
    const leader = await cluster.leader(5000);
    await leader.request<WriteLoadResult>({ op: 'writeLoad', writers: 2, durationMs: 500, keyPrefix: 'wal-' }, 20_000);
    const victim = cluster.nodes.find((n) => n !== leader)!;
    await victim.signal('SIGKILL');
    const walDir = path.join(cluster.dataRoot, victim.id, 'wal');
    const segment = fs.readdirSync(walDir).sort().at(-1)!;
    const file = path.join(walDir, segment);
    const bytes = fs.readFileSync(file);
    const { records } = decodeRecords(bytes);
    expect(records.length).toBeGreaterThan(20);
    // An entry record in the middle: synced batches follow it, so damage there is corruption, not a torn tail.
    const entries = records.filter((r) => r.record.type === 'entry');
    const mid = entries[Math.floor(entries.length / 2)]!;
    bytes[mid.offset + 12] ^= 0x40;
    fs.writeFileSync(file, bytes);

    await expect(victim.start()).rejects.toThrow(/exited/);
    await waitUntil('the node to say why', 2000, async () => (victim.output.includes('failed to start') ? true : undefined));
    expect(victim.output).toContain(`failed to start: corrupt WAL: wal/${segment} at byte ${mid.offset}: `);
    expect(victim.output).toMatch(/restore the dataDir from a backup or remove it/);
    console.log(`e2e damaged WAL: ${victim.output.trim().split('\n').at(-1)}`);
    expect(victim.running).toBe(false);
    // The other two keep serving.
    const w = await leader.request<WriteResult>({ op: 'put', key: 'after-corruption', value: 1 });
    expect(w.version).toBe(1);
  });
});
