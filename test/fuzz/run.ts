import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WriteResult } from '../../lib/cluster/cluster-store.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import type { ReadKeysResult } from '../support/node-protocol.js';
import { Prng } from '../support/prng.js';
import { classifyLine, reasonCategory } from './drop-log.js';
import { drawCase, material, type FuzzCase } from './fuzz-case.js';
import { runCase, type CaseOutcome } from './fuzz-connection.js';
import { FuzzNode } from './fuzz-node.js';
import { RECORDING_PORTS, recordTraffic } from './record-traffic.js';

export interface FuzzOptions {
  /** Random and mutated frames to send, at least. */
  readonly count: number;
  readonly seed: number;
  /** Ports basePort … basePort+7 on 127.0.0.1: five for recording, three for the live cluster. */
  readonly basePort: number;
  /** Connections in flight at once before authentication (default 12). */
  readonly concurrency?: number;
  /**
   * After the last byte, how long to wait for the node to close a connection it must drop (default 3000 ms: it
   * normally takes milliseconds, a slow close on a loaded machine must not count as a miss), and how long to watch
   * one it must keep open before resetting it (default 40 ms).
   */
  readonly dropWaitMs?: number;
  readonly openWaitMs?: number;
  readonly log?: (m: string) => void;
}

export interface FuzzSummary {
  readonly seed: number;
  readonly requested: number;
  readonly durationMs: number;
  readonly recordedFrames: number;
  readonly cases: number;
  readonly connections: number;
  readonly fuzzFrames: number;
  readonly fuzzFramesByMode: { readonly preauth: number; readonly auth: number };
  readonly fuzzFramesBySource: Record<string, number>;
  readonly bytesSent: number;
  readonly delivery: Record<string, number>;
  readonly expected: { readonly drop: number; readonly open: number };
  readonly outcomes: {
    readonly droppedAsExpected: number;
    /** A refusable input the node did not drop within the wait: a bug. */
    readonly missedDrops: number;
    /** Dropped, but no log line names the connection: a bug. */
    readonly unloggedDrops: number;
    /** Closed by the node although nothing refusable was read (e.g. a handshake timeout). */
    readonly unexpectedCloses: number;
    readonly stillOpenAsExpected: number;
    readonly authHandshakeFailures: number;
  };
  readonly dropsByReason: Record<string, number>;
  readonly crashes: readonly string[];
  readonly internalErrors: readonly string[];
  /** Lines a node printed that it did not write itself: stack traces, or text a peer smuggled into the log. */
  readonly foreignLogLines: readonly string[];
  readonly rssBytes: Record<string, { readonly before: number | null; readonly peak: number | null; readonly after: number | null }>;
  /** The largest node RSS at each progress mark (every tenth of the run): growth that levels off, or not. */
  readonly rssByProgress: readonly { readonly frames: number; readonly maxRssBytes: number }[];
  readonly committing: {
    readonly duringFuzz: { readonly acked: number; readonly errors: number; readonly longestGapMs: number };
    readonly afterFuzz: { readonly writesOnEveryNode: boolean; readonly ackedKeysMissing: number };
    readonly termBefore: number;
    readonly termAfter: number;
  };
  readonly examples: { readonly missedDrops: readonly string[]; readonly unloggedDrops: readonly string[]; readonly unexpectedCloses: readonly string[] };
  readonly pass: boolean;
}

const SECRET = 'fuzz-cluster-secret-0123';
/** The cluster's members: n0 is the member the fuzzer poses as once authenticated; it never runs. */
const MEMBERS = ['n0', 'n1', 'n2', 'n3'];
const RUNNING = ['n1', 'n2', 'n3'];

interface Tracked {
  readonly c: FuzzCase;
  outcome: CaseOutcome | null;
  reasons: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A fuzz run: records real traffic, starts a live cluster (n1–n3 as real processes; n0 is a member that never runs,
 * which the fuzzer impersonates with the secret), keeps a writer committing through it, and sends cases until
 * `count` random and mutated frames have gone out — before authentication to every node, and after a genuine
 * handshake as n0 to every node, one such connection per node at a time. Then checks the cluster still commits and
 * every acknowledged write is there, and summarizes.
 */
export async function runFuzz(o: FuzzOptions): Promise<FuzzSummary> {
  const log = o.log ?? (() => undefined);
  const t0 = performance.now();
  const recorded = await recordTraffic(o.basePort, SECRET, log);
  const mat = material(recorded);
  const rng = new Prng(o.seed);

  const livePort = (id: string): number => o.basePort + RECORDING_PORTS + RUNNING.indexOf(id);
  const members = MEMBERS.map((id) => `${id}=127.0.0.1:${RUNNING.includes(id) ? livePort(id) : o.basePort + RECORDING_PORTS + 3}`);
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-fuzz-'));

  const byPort = new Map<number, Tracked>();
  const dropsByReason: Record<string, number> = {};
  const internalErrors: string[] = [];
  const foreign: string[] = [];
  const counts = { dropped: 0, missed: 0, unlogged: 0, unexpected: 0, open: 0, authFail: 0, expDrop: 0, expOpen: 0 };
  const examples = { missedDrops: [] as string[], unloggedDrops: [] as string[], unexpectedCloses: [] as string[] };
  const note = (list: string[], s: string) => list.length < 10 && list.push(s);

  const onLine = (node: FuzzNode, line: string): void => {
    const k = classifyLine(line);
    // A line in another node's name (or in nobody's) was not written by this node's logger as one line.
    if (k.kind === 'foreign' || (k.kind === 'drop' ? k.drop.node !== node.id : !k.line.startsWith(`[${node.id}] `))) {
      if (foreign.length < 20) foreign.push(`${node.id}: ${line.slice(0, 200)}`);
      return;
    }
    if (k.kind === 'trouble') {
      if (internalErrors.length < 20) internalErrors.push(`${node.id}: ${k.line.slice(0, 300)}`);
      return;
    }
    if (k.kind !== 'drop') return;
    const cat = reasonCategory(k.drop.reason);
    dropsByReason[cat] = (dropsByReason[cat] ?? 0) + 1;
    const t = byPort.get(k.drop.port);
    if (t && t.c.target === node.id) t.reasons.push(k.drop.reason);
  };
  const nodes = RUNNING.map(
    (id) =>
      new FuzzNode(
        id,
        {
          CATGA_NODE_ID: id,
          CATGA_MEMBERS: members.join(','),
          CATGA_DATA_DIR: join(dataRoot, id),
          CATGA_SECRET: SECRET,
          CATGA_QUIET: '1',
          // Some slack for a 2-core machine running three nodes and the fuzzer: a vote needs all three.
          CATGA_ELECTION_TIMEOUT: '400',
          CATGA_HEARTBEAT: '50',
        },
        onLine,
      ),
  );

  /** Judges a finished case once its log lines had time to arrive. */
  const judge = (t: Tracked): void => {
    const out = t.outcome!;
    const where = () => `#${t.c.seq} ${t.c.mode} → ${t.c.target} (${t.c.delivery}; ${t.c.sources.join(', ')})`;
    if (t.c.mode === 'auth' && out.handshakeFailed !== null) {
      counts.authFail++;
      return;
    }
    if (t.c.expect.kind === 'drop') {
      counts.expDrop++;
      if (!out.closedByNode) {
        counts.missed++;
        note(examples.missedDrops, `${where()}: expected "${t.c.expect.reason}"`);
      } else if (t.reasons.length === 0) {
        counts.unlogged++;
        note(examples.unloggedDrops, `${where()}: expected "${t.c.expect.reason}"`);
      } else counts.dropped++;
    } else {
      counts.expOpen++;
      if (out.closedByNode) {
        counts.unexpected++;
        note(examples.unexpectedCloses, `${where()}: ${t.reasons.join('; ') || 'no log line'}`);
      } else counts.open++;
    }
  };

  const writer = { acked: [] as string[], errors: 0, gap: 0, stop: false };
  const rss: Record<string, { before: number | null; peak: number | null; after: number | null }> = {};
  const rssByProgress: { frames: number; maxRssBytes: number }[] = [];
  let fuzzFrames = 0;
  const byMode = { preauth: 0, auth: 0 };
  const bySource: Record<string, number> = {};
  const delivery: Record<string, number> = {};
  let bytesSent = 0;
  let cases = 0;
  let termBefore = 0;
  let termAfter = 0;
  let afterOk = false;
  let missing = -1;
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await nodes[0]!.request({ op: 'waitForLeader', timeout: 15_000 }, 20_000);
    termBefore = (await nodes[0]!.request<RuntimeStatus>({ op: 'status' })).term;
    for (const n of nodes) rss[n.id] = { before: n.rss(), peak: n.rss(), after: null };
    const sampler = setInterval(() => {
      for (const n of nodes) {
        const r = n.rss();
        const s = rss[n.id]!;
        if (r !== null && (s.peak === null || r > s.peak)) s.peak = r;
      }
    }, 250);

    // Writes keep going through n1 (forwarded when it does not lead) for the whole fuzz.
    const writing = (async () => {
      let last = performance.now();
      for (let i = 0; !writer.stop; i++) {
        const key = `fuzz-w-${i}`;
        try {
          await nodes[0]!.request<WriteResult>({ op: 'put', key, value: i }, 20_000);
          writer.acked.push(key);
          const now = performance.now();
          writer.gap = Math.max(writer.gap, now - last);
          last = now;
        } catch {
          writer.errors++;
        }
        await sleep(5);
      }
    })();

    const dropWaitMs = o.dropWaitMs ?? 3000;
    const openWaitMs = o.openWaitMs ?? 40;
    let nextLog = 0;
    const lane = async (mode: 'preauth' | 'auth', target: string | null, laneRng: Prng): Promise<void> => {
      while (fuzzFrames < o.count && nodes.every((n) => n.running)) {
        const to = target ?? laneRng.pick(RUNNING);
        const c = drawCase(cases++, laneRng, mat, { target: to, members: MEMBERS, secret: SECRET }, mode, 'n0');
        fuzzFrames += c.fuzzFrames;
        byMode[mode] += c.fuzzFrames;
        for (const s of c.sources) bySource[s] = (bySource[s] ?? 0) + 1;
        delivery[c.delivery] = (delivery[c.delivery] ?? 0) + 1;
        const t: Tracked = { c, outcome: null, reasons: [] };
        const waitMs = c.expect.kind === 'drop' ? dropWaitMs : openWaitMs;
        const outcome = await runCase(c, livePort(to), SECRET, waitMs, (port) => {
          // A port comes back only after thousands of connections: judge the case it served before.
          const before = byPort.get(port);
          if (before?.outcome) judge(before);
          byPort.set(port, t);
        });
        bytesSent += outcome.bytesSent;
        t.outcome = outcome;
        if (fuzzFrames >= nextLog) {
          const maxRss = Math.max(...nodes.map((n) => n.rss() ?? 0));
          rssByProgress.push({ frames: fuzzFrames, maxRssBytes: maxRss });
          log(`${fuzzFrames} frames, ${cases} cases, ${writer.acked.length} writes committed, largest RSS ${(maxRss / 2 ** 20).toFixed(0)} MB`);
          nextLog += Math.max(1000, Math.floor(o.count / 10));
        }
      }
    };
    const lanes: Promise<void>[] = [];
    for (let i = 0; i < (o.concurrency ?? 12); i++) lanes.push(lane('preauth', null, rng.fork()));
    for (const id of RUNNING) lanes.push(lane('auth', id, rng.fork()));
    await Promise.all(lanes);
    writer.stop = true;
    await writing;
    clearInterval(sampler);
    await sleep(1000); // the last log lines
    for (const t of byPort.values()) if (t.outcome) judge(t);

    // Still serving: a write through every node, and every acknowledged key readable on every node.
    const probe = await Promise.all(
      nodes.map((n) =>
        n.request<WriteResult>({ op: 'put', key: `after-fuzz-${n.id}`, value: 1 }, 20_000).then(
          (w) => w.version === 1,
          () => false,
        ),
      ),
    );
    afterOk = probe.every(Boolean);
    const keys = [...writer.acked, ...RUNNING.map((id) => `after-fuzz-${id}`)];
    missing = 0;
    for (const n of nodes) {
      const r = await n.request<ReadKeysResult>({ op: 'readKeys', keys, consistency: 'linearizable' }, 60_000).catch(() => null);
      missing += r === null ? keys.length : r.missing.length;
    }
    termAfter = (await nodes[0]!.request<RuntimeStatus>({ op: 'status' })).term;
    for (const n of nodes) rss[n.id]!.after = n.rss();
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dataRoot, { recursive: true, force: true });
  }

  const crashes = nodes.flatMap((n) => n.crashes);
  const summary: Omit<FuzzSummary, 'pass'> = {
    seed: o.seed,
    requested: o.count,
    durationMs: Math.round(performance.now() - t0),
    recordedFrames: recorded.length,
    cases,
    connections: cases,
    fuzzFrames,
    fuzzFramesByMode: byMode,
    fuzzFramesBySource: bySource,
    bytesSent,
    delivery,
    expected: { drop: counts.expDrop, open: counts.expOpen },
    outcomes: {
      droppedAsExpected: counts.dropped,
      missedDrops: counts.missed,
      unloggedDrops: counts.unlogged,
      unexpectedCloses: counts.unexpected,
      stillOpenAsExpected: counts.open,
      authHandshakeFailures: counts.authFail,
    },
    dropsByReason,
    crashes,
    internalErrors,
    foreignLogLines: foreign,
    rssBytes: rss,
    rssByProgress,
    committing: {
      duringFuzz: { acked: writer.acked.length, errors: writer.errors, longestGapMs: Math.round(writer.gap) },
      afterFuzz: { writesOnEveryNode: afterOk, ackedKeysMissing: missing },
      termBefore,
      termAfter,
    },
    examples,
  };
  const pass =
    fuzzFrames >= o.count &&
    crashes.length === 0 &&
    internalErrors.length === 0 &&
    foreign.length === 0 &&
    counts.missed === 0 &&
    counts.unlogged === 0 &&
    counts.authFail === 0 &&
    writer.acked.length > 0 &&
    afterOk &&
    missing === 0;
  return { ...summary, pass };
}
