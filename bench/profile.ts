/**
 * CPU profile of our leader under a write load: `npm run build && node dist/bench/profile.js [--writers 1]
 * [--seconds 5] [--port 18940] [--out DIR] [--top 25]`.
 *
 * Starts three node processes with `--cpu-prof`, puts `writers` concurrent writers in
 * the leader for `seconds`, stops the nodes so they write their profiles, and prints the functions with the most self
 * time on the leader during the load (and a summary by area: lib/raft, lib/storage, node internals, GC, ...). The
 * .cpuprofile files stay in DIR for Chrome DevTools (Performance → Load profile) or speedscope.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WriteLoadResult } from '../test/support/node-protocol.js';
import { assertBuilt, ProcessCluster } from '../test/support/process-cluster.js';
import { guardCluster } from './cleanup.js';
import { settled } from './cluster.js';
import { round, throughput } from './measure.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[];
  /** µs on the monotonic clock that process.hrtime reads too, in every process on this machine. */
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} expects a positive number, got ${JSON.stringify(process.argv[i + 1])}`);
  return n;
}

/** "lib/raft/raft.ts"-like paths, node internals as "node:…", dependencies by package. */
function where(url: string): string {
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  return url;
}

function area(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const w = where(frame.url);
  if (w.startsWith('lib/')) return w.split('/').slice(0, 2).join('/');
  if (w.startsWith('node:')) return 'node internals';
  if (w.startsWith('test/')) return 'test/e2e/node-main (the load loop)';
  return w.split('/')[0]!.startsWith('@') ? w.split('/').slice(0, 2).join('/') : w.split('/')[0]!;
}

interface Ranked {
  readonly name: string;
  readonly ms: number;
  readonly pct: number;
}

interface Summary {
  readonly windowMs: number;
  readonly busyMs: number;
  /** Functions, then areas, with the most self time: ms and % of the busy time. */
  readonly top: readonly Ranked[];
  readonly areas: readonly Ranked[];
}

/** Self time per function and per area, for samples taken between `fromUs` and `toUs` (monotonic µs). */
export function summarize(p: CpuProfile, fromUs: number, toUs: number, topN: number): Summary {
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs || t > toUs) return;
    const f = byId.get(id)!;
    if (f.functionName === '(idle)') return;
    busy += dt;
    const key = `${f.functionName || '(anonymous)'}  ${f.url ? `${where(f.url)}:${f.lineNumber + 1}` : ''}`.trimEnd();
    fns.set(key, (fns.get(key) ?? 0) + dt);
    const a = area(f);
    areas.set(a, (areas.get(a) ?? 0) + dt);
  });
  const rank = (m: Map<string, number>): Ranked[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([name, us]) => ({ name, ms: round(us / 1000, 1), pct: round((100 * us) / Math.max(1, busy), 1) }));
  return { windowMs: round((toUs - fromUs) / 1000, 1), busyMs: round(busy / 1000, 1), top: rank(fns), areas: rank(areas) };
}

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

async function main(): Promise<void> {
  assertBuilt();
  const writers = arg('writers', 1);
  const seconds = arg('seconds', 5);
  const topN = arg('top', 25);
  const basePort = arg('port', 18940);
  const outFlag = process.argv.indexOf('--out');
  const out = outFlag >= 0 ? path.resolve(process.argv[outFlag + 1]!) : fs.mkdtempSync(path.join(os.tmpdir(), 'catga-profile-'));
  // Node refuses --cpu-prof in NODE_OPTIONS; fork() passes this process's execArgv on to the node processes instead.
  process.execArgv.push('--cpu-prof', `--cpu-prof-dir=${out}`);
  const c = new ProcessCluster({ basePort, secret: 'bench-secret-0123456789' });
  const unguard = guardCluster(c);
  let leaderId = '';
  let leaderPid = 0;
  let from = 0;
  let to = 0;
  try {
    await c.start();
    const leader = await settled(c);
    leaderId = leader.id;
    leaderPid = leader.pid!;
    await leader.request<WriteLoadResult>({ op: 'writeLoad', writers, durationMs: 1000, keyPrefix: 'warm-' }, 60_000);
    from = monotonicUs();
    const r = await leader.request<WriteLoadResult>({ op: 'writeLoad', writers, durationMs: seconds * 1000, keyPrefix: 'p-' }, seconds * 1000 + 60_000);
    to = monotonicUs();
    process.stdout.write(`${JSON.stringify({ bench: 'profile', writers, leader: leaderId, ...throughput(r.latencies, r.startedAt, r.endedAt, r.errors) })}\n`);
    // A node writes its profile when it exits by itself; SIGTERM makes it stop the cluster and exit.
    await Promise.all(c.nodes.map((n) => n.signal('SIGTERM')));
  } finally {
    await c.destroy();
    unguard();
  }
  // Profiles are named CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile.
  const file = fs.readdirSync(out).find((f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(leaderPid));
  if (!file) throw new Error(`no profile of the leader (pid ${leaderPid}) in ${out}: it did not exit by itself`);
  const s = summarize(JSON.parse(fs.readFileSync(path.join(out, file), 'utf8')) as CpuProfile, from, to, topN);
  process.stdout.write(`\nleader ${leaderId}, ${writers} writer(s): ${s.busyMs} ms on the CPU in a ${s.windowMs} ms window (${round((100 * s.busyMs) / s.windowMs, 0)}%)\n\n`);
  const lines = (rs: readonly Ranked[]) => rs.map((r) => `${String(r.pct).padStart(6)}%  ${String(r.ms).padStart(8)} ms  ${r.name}`).join('\n');
  process.stdout.write(`self time by area:\n${lines(s.areas)}\n\ntop functions by self time:\n${lines(s.top)}\n\n`);
  process.stdout.write(`the leader's profile: ${path.join(out, file)} (the others' next to it)\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
