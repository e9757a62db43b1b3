/**
 * One cluster node as a real process, for end-to-end tests and benchmarks: the library without Nest, configured by
 * the CATGA_* environment and driven by its parent over IPC (`process.send`). Not the sample app.
 */
import { createCluster } from '../../lib/cluster/create-cluster.js';
import type { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import type { NodeRequest, NodeReply } from '../support/node-protocol.js';

const id = process.env.CATGA_NODE_ID ?? 'node1';
const num = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

function log(level: 'log' | 'warn' | 'error') {
  return (m: string) => {
    if (process.env.CATGA_QUIET && level === 'log') return;
    console[level](`[${id}] ${m}`);
  };
}

async function handle(cluster: ClusterCoordinator, r: NodeRequest): Promise<unknown> {
  switch (r.op) {
    case 'status':
      return cluster.status();
    case 'put':
      return cluster.store.put(r.key, r.value);
    case 'get':
      return (await cluster.store.get(r.key, { consistency: r.consistency ?? 'linearizable' })) ?? null;
    case 'cas':
      return cluster.store.cas(r.key, r.expectedVersion, r.value);
    case 'delete':
      return cluster.store.delete(r.key);
    case 'waitForLeader':
      return cluster.waitForLeader({ timeout: r.timeout });
    case 'transfer':
      return cluster.transferLeadership(r.to);
    case 'writeLoad':
      return writeLoad(cluster, r.writers, r.durationMs, r.keyPrefix);
    case 'stop':
      await cluster.stop();
      setImmediate(() => process.exit(0));
      return true;
  }
}

/** `writers` concurrent loops of puts for `durationMs`: the latency of each acknowledged write, in µs. */
async function writeLoad(cluster: ClusterCoordinator, writers: number, durationMs: number, keyPrefix: string) {
  const latencies: number[] = [];
  const acked: string[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const key = `${keyPrefix}${w}-${i}`;
        const t = performance.now();
        try {
          await cluster.store.put(key, i);
          latencies.push(Math.round((performance.now() - t) * 1000));
          acked.push(key);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { latencies, acked, errors };
}

async function main(): Promise<void> {
  const cluster = await createCluster({
    nodeId: id,
    compactionThreshold: num('CATGA_COMPACTION'),
    electionTimeout: num('CATGA_ELECTION_TIMEOUT'),
    heartbeatInterval: num('CATGA_HEARTBEAT'),
    logger: { log: log('log'), warn: log('warn'), error: log('error') },
  });
  process.on('message', (r: NodeRequest) => {
    handle(cluster, r).then(
      (result) => process.send!({ id: r.id, ok: true, result } satisfies NodeReply),
      (e: Error) => process.send!({ id: r.id, ok: false, error: { name: e.name, message: e.message } } satisfies NodeReply),
    );
  });
  process.on('SIGTERM', () => void cluster.stop().then(() => process.exit(0)));
  process.send!({ id: 0, ok: true, result: 'ready' } satisfies NodeReply);
}

main().catch((e: Error) => {
  console.error(`[${id}] failed to start: ${e.message}`);
  process.exit(1);
});
