/** What a planned hand-over logs on the leader that steps down: the successor's name at log level, and no warning. */
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import type { NodeId } from '../../lib/raft/index.js';
import { startMemCluster } from './mem-cluster.js';

jest.setTimeout(20_000);

type Lines = { log: string[]; warn: string[] };
const lines = new Map<NodeId, Lines>();
const logger = (id: NodeId): ClusterLogger => {
  const l: Lines = { log: [], warn: [] };
  lines.set(id, l);
  return { log: (m) => l.log.push(m), warn: (m) => l.warn.push(m), error: (m) => l.warn.push(m) };
};

let c: Awaited<ReturnType<typeof startMemCluster>> | undefined;
afterEach(async () => {
  await c?.stop();
  lines.clear();
});

test('a graceful stop: "handing leadership over to <successor>", then "stepped down", never "lost contact" with itself', async () => {
  c = await startMemCluster({ logger });
  const leader = await c.leader();
  const seen = lines.get(leader)!;
  const mark = { log: seen.log.length, warn: seen.warn.length };
  await c.stopNode(leader);
  const next = await c.leader(c.ids.filter((id) => id !== leader));
  const logged = seen.log.slice(mark.log);
  expect(logged).toContainEqual(`handing leadership over to ${next} before stopping`);
  expect(logged.some((l) => l.startsWith(`stepped down for ${next}`))).toBe(true);
  expect(seen.warn.slice(mark.warn)).toEqual([]);
});

test('transferLeadership(): the same at log level, and the old leader then names the new one', async () => {
  c = await startMemCluster({ logger });
  const leader = await c.leader();
  const to = c.ids.find((id) => id !== leader)!;
  const seen = lines.get(leader)!;
  const warned = seen.warn.length;
  await c.node(leader).cluster.transferLeadership(to);
  await c.until('the old leader knows the new one', () => c!.node(leader).cluster.leaderId === to);
  expect(seen.log).toContainEqual(`handing leadership over to ${to}`);
  expect(seen.log).toContainEqual(expect.stringMatching(new RegExp(`^leader is ${to} \\(term \\d+\\)$`)));
  expect(seen.warn.slice(warned)).toEqual([]);
});
