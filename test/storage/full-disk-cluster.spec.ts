/**
 * Three real runtimes in this process — real FileStorage on real directories, real TCP on 127.0.0.1 — where one
 * node's file system fills up (QuotaDisk): the node acknowledges nothing while it is full, the other two keep
 * committing, it catches up once space returns, and every acknowledged write survives a restart of all three.
 * test/e2e/disk.spec.ts does the same with node processes and a real tmpfs.
 */
import { membershipOf } from '../../lib/raft/membership.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { systemClock, systemTimers } from '../../lib/io/clock.js';
import { RaftRuntime } from '../../lib/cluster/raft-runtime.js';
import { ClusterStateMachine } from '../../lib/cluster/state/cluster-state-machine.js';
import { encodePayload } from '../../lib/cluster/state/entry-codec.js';
import type { Disk } from '../../lib/storage/disk.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { NodeDisk } from '../../lib/storage/node-disk.js';
import { TcpNetwork } from '../../lib/transport/tcp-network.js';
import { freePorts } from '../transport/helpers.js';
import { tempDir } from './helpers.js';
import { QuotaDisk } from './quota-disk.js';

jest.setTimeout(60_000);

const IDS = ['n1', 'n2', 'n3'] as const;
type Id = (typeof IDS)[number];

class Log implements ClusterLogger {
  readonly lines: string[] = [];
  log(m: string): void {
    this.lines.push(`log ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`warn ${m}`);
  }
  error(m: string): void {
    this.lines.push(`error ${m}`);
  }
  count(pattern: RegExp): number {
    return this.lines.filter((l) => pattern.test(l)).length;
  }
}

interface Node {
  readonly runtime: RaftRuntime;
  readonly sm: ClusterStateMachine;
  readonly log: Log;
}

let tmp: ReturnType<typeof tempDir>;
let members: string[] = [];
const nodes = new Map<Id, Node>();

beforeEach(async () => {
  tmp = tempDir();
  const ports = await freePorts(3);
  members = IDS.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
});

afterEach(async () => {
  await Promise.all([...nodes.values()].map((n) => n.runtime.stop({ transfer: false })));
  nodes.clear();
  tmp.cleanup();
});

async function start(id: Id, disk: Disk = new NodeDisk(`${tmp.dir}/${id}`)): Promise<Node> {
  const log = new Log();
  const sm = new ClusterStateMachine();
  const runtime = new RaftRuntime(
    { nodeId: id, membership: membershipOf([...IDS]), tickMs: 10, electionTick: 15, heartbeatTick: 5, compactionThreshold: 100_000 },
    {
      storage: new FileStorage(disk),
      network: new TcpNetwork({ nodeId: id, members, secret: 'full-disk-test-secret', logger: { log() {}, warn() {} } }),
      clock: systemClock,
      timers: systemTimers,
      random: Math.random,
      stateMachine: sm,
      logger: log,
    },
  );
  await runtime.start();
  const node = { runtime, sm, log };
  nodes.set(id, node);
  return node;
}

const node = (id: Id): Node => nodes.get(id)!;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

/** The node whose runtime leads with a lease, among `among`. */
function leaderAmong(among: readonly Id[]): Promise<Id> {
  return until(`a leader among ${among.join(', ')}`, () => among.find((id) => node(id).runtime.hasValidLease()));
}

function put(id: Id, key: string): Promise<unknown> {
  return node(id).runtime.propose(encodePayload({ module: 'kv', command: { op: 'put', key, value: key }, time: Date.now() }));
}

/** Puts `keys` one after another on whichever of `among` leads, retrying through leader changes. */
async function write(keys: readonly string[], among: readonly Id[]): Promise<void> {
  for (const key of keys) {
    for (let attempt = 0; ; attempt++) {
      try {
        await put(await leaderAmong(among), key);
        break;
      } catch (e) {
        if (attempt >= 50) throw e;
        await sleep(20);
      }
    }
  }
}

const keys = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** Restarts all three on their dataDirs and checks every key is there on every node. */
async function restartAllAndRead(acked: readonly string[]): Promise<void> {
  await Promise.all([...nodes.values()].map((n) => n.runtime.stop({ transfer: false })));
  nodes.clear();
  for (const id of IDS) await start(id);
  await write(['after-restart'], IDS);
  for (const id of IDS) {
    await node(id).runtime.readBarrier(5000);
    const missing = acked.filter((k) => node(id).sm.kv.get(k)?.value !== k);
    expect({ id, missing }).toEqual({ id, missing: [] });
  }
}

test('a follower whose disk fills acknowledges nothing while the others commit, then catches up; nothing acknowledged is lost', async () => {
  const disk3 = new QuotaDisk(`${tmp.dir}/n3`);
  await Promise.all([start('n1'), start('n2'), start('n3', disk3)]);
  let leader = await leaderAmong(IDS);
  if (leader === 'n3') {
    node('n3').runtime.transferLeadership('n1');
    leader = await leaderAmong(['n1', 'n2']);
  }
  const before = keys('before', 20);
  await write(before, [leader]);
  await until('n3 to apply the first writes', () => node('n3').runtime.applied >= node(leader).runtime.status().commitIndex);

  disk3.leaveFree(0);
  const filledAt = node(leader).runtime.status().lastIndex;
  const during = keys('during', 60);
  await write(during, ['n1', 'n2']);
  await sleep(300);
  const match3 = node(leader).runtime.status().members.find((m) => m.id === 'n3')!.matchIndex!;
  const commit = node(leader).runtime.status().commitIndex;
  // The others committed all 60 writes; n3 acknowledged (the leader's match index for it) and applied nothing past
  // what it had when its disk filled.
  expect(commit).toBeGreaterThanOrEqual(filledAt + 60);
  expect(match3).toBe(filledAt);
  expect(node('n3').runtime.applied).toBe(filledAt);
  expect(node('n3').runtime.isRunning).toBe(true);
  expect(disk3.refusals).toBeGreaterThan(0);
  expect(node('n3').log.count(/^warn disk full: .*disk is full.*acknowledges nothing/)).toBe(1);

  disk3.capacity = Number.POSITIVE_INFINITY;
  await until('n3 to catch up', () => node('n3').runtime.applied >= commit);
  expect(node('n3').log.count(/^log disk space is back/)).toBe(1);
  const after = keys('after', 10);
  await write(after, ['n1', 'n2', 'n3']);
  expect(node('n3').log.count(/^error /)).toBe(0);
  await restartAllAndRead([...before, ...during, ...after]);
});

test('a leader whose disk fills refuses proposals, the others elect a leader and commit, and it rejoins once space returns', async () => {
  const disk3 = new QuotaDisk(`${tmp.dir}/n3`);
  await Promise.all([start('n1'), start('n2'), start('n3', disk3)]);
  const first = await leaderAmong(IDS);
  if (first !== 'n3') {
    node(first).runtime.transferLeadership('n3');
    await until('n3 to lead', () => node('n3').runtime.hasValidLease());
  }
  const before = keys('before', 20);
  await write(before, ['n3']);

  disk3.leaveFree(0);
  // The first write after the disk filled is in the log but its Ready is held: not acknowledged, its outcome unknown.
  await expect(put('n3', 'in-flight')).rejects.toThrow(/ProposalOutcomeUnknownError|disk is full; the write may still apply/);
  expect(node('n3').log.count(/^warn disk full/)).toBe(1);
  // Later ones are refused as by a non-leader, so a proposer retries elsewhere.
  await expect(put('n3', 'refused')).rejects.toMatchObject({ name: 'NotLeaderException', message: expect.stringMatching(/disk is full/) });

  const leader = await leaderAmong(['n1', 'n2']);
  const during = keys('during', 40);
  await write(during, ['n1', 'n2']);
  expect(node('n3').runtime.isRunning).toBe(true);

  disk3.capacity = Number.POSITIVE_INFINITY;
  const commit = node(leader).runtime.status().commitIndex;
  await until('n3 to follow and catch up', () => node('n3').runtime.status().leaderId !== 'n3' && node('n3').runtime.applied >= commit);
  expect(node('n3').log.count(/^error /)).toBe(0);
  const after = keys('after', 10);
  await write(after, IDS);
  await restartAllAndRead([...before, ...during, ...after]);
  // The refused write never entered a log. The one whose outcome was unknown may have been committed by the other
  // two (a leader may replicate while its own write is pending); if so it applied once, like any other.
  expect(nodes.get('n1')!.sm.kv.get('refused')).toBeUndefined();
  expect([undefined, 1]).toContain(nodes.get('n1')!.sm.kv.get('in-flight')?.version);
});
