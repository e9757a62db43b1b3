import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WriteLoadResult } from '../support/node-protocol.js';
import { FuzzNode } from './fuzz-node.js';
import { RecordingProxy, type RecordedFrame } from './recording-proxy.js';

export const RECORDING_PORTS = 5;

/**
 * Real traffic to mutate: a three-node cluster on ports base … base+2 whose dialers reach n2 and n3 through
 * recording proxies (base+3, base+4), so every frame of every connection — handshakes, appends with real entries,
 * heartbeats, votes of a leadership transfer, forwarded writes and their replies, snapshots sent to a member that
 * restarted behind — is captured as it crossed the wire. The cluster is removed afterwards.
 */
export async function recordTraffic(basePort: number, secret: string, log: (m: string) => void): Promise<RecordedFrame[]> {
  const ids = ['n1', 'n2', 'n3'];
  const real = ids.map((id, i) => `${id}=127.0.0.1:${basePort + i}`);
  const viaProxy = (id: string): string => `${id}=127.0.0.1:${basePort + 2 + ids.indexOf(id)}`;
  // Each node's own address must be its real one (it listens there); the addresses it dials may be proxies.
  const membersOf: Record<string, string[]> = {
    n1: [real[0]!, viaProxy('n2'), viaProxy('n3')],
    n2: [real[0]!, real[1]!, viaProxy('n3')],
    n3: real,
  };
  const proxies = [new RecordingProxy('n2', basePort + 1), new RecordingProxy('n3', basePort + 2)];
  await proxies[0]!.listen(basePort + 3);
  await proxies[1]!.listen(basePort + 4);
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-fuzz-rec-'));
  const nodes = ids.map(
    (id) =>
      new FuzzNode(id, {
        CATGA_NODE_ID: id,
        CATGA_MEMBERS: membersOf[id]!.join(','),
        CATGA_DATA_DIR: join(dataRoot, id),
        CATGA_SECRET: secret,
        CATGA_QUIET: '1',
        CATGA_COMPACTION: '40',
      }),
  );
  const node = (id: string): FuzzNode => nodes[ids.indexOf(id)]!;
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await node('n1').request({ op: 'waitForLeader', timeout: 10_000 });
    const load = (on: string, prefix: string, ms: number) =>
      node(on).request<WriteLoadResult>({ op: 'writeLoad', writers: 2, durationMs: ms, keyPrefix: prefix, valueBytes: 40 }, 30_000);
    // Writes on every node: on the leader straight into the log, elsewhere forwarded (CALL / REPLY).
    await Promise.all(ids.map((id) => load(id, `rec-${id}-`, 600)));
    // A leadership transfer: TimeoutNow, votes.
    const status = await node('n1').request<{ leaderId: string }>({ op: 'status' });
    const next = ids.find((id) => id !== status.leaderId)!;
    await node(status.leaderId || 'n1').request({ op: 'transfer', to: next }).catch(() => undefined);
    await node('n1').request({ op: 'waitForLeader', timeout: 10_000 });
    // n3 misses more than the compaction threshold, so the leader sends it a snapshot when it is back.
    await node('n3').kill();
    await Promise.all(['n1', 'n2'].map((id) => load(id, `rec-behind-${id}-`, 400)));
    await node('n3').start();
    await node('n3').request({ op: 'waitForLeader', timeout: 10_000 });
    await load('n3', 'rec-after-', 300);
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    await Promise.all(proxies.map((p) => p.close()));
    rmSync(dataRoot, { recursive: true, force: true });
  }
  const frames = proxies.flatMap((p) => p.frames);
  const byKind = new Map<number, number>();
  for (const f of frames) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  log(`recorded ${frames.length} frames (${[...byKind].map(([k, n]) => `kind ${k}: ${n}`).join(', ')})`);
  return frames;
}
