import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { BROKEN_CORES, BROKEN_MEMBERSHIP_CORES } from './broken-cores.js';
import { BROKEN_LEADER_WORK } from './broken-leader-work.js';
import { BROKEN_LOCKS } from './broken-locks.js';
import { runSimulation, type LeaderWorkStats, type SimLevel, type SimResult } from './simulation.js';

/**
 * `npm run sim -- --seeds N [--start S] [--nodes 3,5] [--level core|runtime] [--membership] [--workers W] [--variant NAME]`
 * runs seeds S..S+N-1 across worker threads; `--seed S` replays one seed with its trace. `--membership` runs only the
 * membership simulations (random configuration changes; `--nodes` is then the number of voters to start with). The
 * last line printed is a JSON summary.
 */
interface Args {
  seeds: number;
  start: number;
  single: number | null;
  nodes: number[];
  workers: number;
  variant: string | null;
  level: SimLevel;
  membership: boolean;
  faultMs?: number;
  calmMs?: number;
}

interface Job {
  readonly seeds: number[];
  readonly args: Args;
}

type Summary = Pick<
  SimResult,
  | 'seed'
  | 'nodes'
  | 'violation'
  | 'steps'
  | 'elections'
  | 'snapshots'
  | 'commits'
  | 'ops'
  | 'lockGrants'
  | 'taskRuns'
  | 'leaderWork'
  | 'targeted'
  | 'leaseAfterHealMs'
  | 'membership'
  | 'profile'
>;
const VARIANTS = [...Object.keys(BROKEN_CORES), ...Object.keys(BROKEN_MEMBERSHIP_CORES), ...Object.keys(BROKEN_LOCKS), ...Object.keys(BROKEN_LEADER_WORK)];
/** Flags that take no value. */
const SWITCHES = new Set(['--membership']);

function parseArgs(argv: string[]): Args {
  const a: Args = { seeds: 100, start: 1, single: null, nodes: [3, 5], workers: availableParallelism(), variant: null, level: 'core', membership: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = SWITCHES.has(flag) ? undefined : argv[++i];
    const num = () => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} expects a whole number, got ${value}`);
      return n;
    };
    switch (flag) {
      case '--seeds': a.seeds = num(); break;
      case '--start': a.start = num(); break;
      case '--seed': a.single = num(); break;
      case '--workers': a.workers = Math.max(1, num()); break;
      case '--fault-ms': a.faultMs = num(); break;
      case '--calm-ms': a.calmMs = num(); break;
      case '--membership': a.membership = true; break;
      case '--nodes':
        a.nodes = (value ?? '').split(',').map(Number);
        if (a.nodes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--nodes expects e.g. 3 or 3,5, got ${value}`);
        break;
      case '--level':
        if (value !== 'core' && value !== 'runtime') throw new Error(`--level expects core or runtime, got ${value}`);
        a.level = value;
        break;
      case '--variant':
        if (!value || !VARIANTS.includes(value)) {
          throw new Error(
            `--variant expects one of ${VARIANTS.join(', ')} (the lock and leader-work ones need --level runtime, the membership ones --membership)`,
          );
        }
        a.variant = value;
        break;
      default:
        throw new Error(`unknown option ${flag}; see test/sim/run.ts`);
    }
  }
  if (a.variant && a.variant in BROKEN_MEMBERSHIP_CORES && !a.membership) throw new Error(`--variant ${a.variant} needs --membership`);
  return a;
}

function nodesFor(seed: number, args: Args): number {
  return args.nodes[seed % args.nodes.length]!;
}

function runOne(seed: number, args: Args, trace: boolean): Promise<SimResult> {
  return runSimulation({
    seed,
    nodes: nodesFor(seed, args),
    level: args.level,
    membership: args.membership,
    core: args.variant ? (BROKEN_CORES[args.variant] ?? BROKEN_MEMBERSHIP_CORES[args.variant]) : undefined,
    lockModule: args.variant ? BROKEN_LOCKS[args.variant] : undefined,
    broken: args.variant ? BROKEN_LEADER_WORK[args.variant] : undefined,
    faultMs: args.faultMs,
    calmMs: args.calmMs,
    trace,
  });
}

function summarize(r: SimResult): Summary {
  const { seed, nodes, violation, steps, elections, snapshots, commits, ops, lockGrants, taskRuns, leaderWork, targeted, leaseAfterHealMs, membership, profile } = r;
  return { seed, nodes, violation, steps, elections, snapshots, commits, ops, lockGrants, taskRuns, leaderWork, targeted, leaseAfterHealMs, membership, profile };
}

function replayHint(seed: number, args: Args): string {
  const extra = [
    `--nodes ${nodesFor(seed, args)}`,
    args.level !== 'core' ? `--level ${args.level}` : '',
    args.membership ? '--membership' : '',
    args.variant ? `--variant ${args.variant}` : '',
    args.faultMs !== undefined ? `--fault-ms ${args.faultMs}` : '',
    args.calmMs !== undefined ? `--calm-ms ${args.calmMs}` : '',
  ].filter(Boolean);
  return `npm run sim -- --seed ${seed} ${extra.join(' ')}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  let results: Summary[];
  if (args.single !== null) {
    const r = await runOne(args.single, args, true);
    console.log(`seed ${r.seed}, ${r.nodes} nodes, profile: ${r.profile}`);
    if (r.violation) console.log(r.trace.slice(-80).join('\n'));
    results = [summarize(r)];
  } else {
    const seeds = Array.from({ length: args.seeds }, (_, i) => args.start + i);
    const workers = Math.min(args.workers, Math.max(1, seeds.length));
    const jobs: Job[] = Array.from({ length: workers }, (_, w) => ({ seeds: seeds.filter((_, i) => i % workers === w), args }));
    results = (await Promise.all(jobs.map(runWorker))).flat();
  }
  const failed = results.filter((r) => r.violation);
  for (const f of failed.slice(0, 10)) {
    console.log(`VIOLATION seed ${f.seed} (${f.nodes} nodes): ${f.violation!.kind}: ${f.violation!.detail}`);
    console.log(`  profile: ${f.profile}`);
    console.log(`  replay:  ${replayHint(f.seed, args)}`);
  }
  const sum = (k: 'steps' | 'elections' | 'commits' | 'ops' | 'lockGrants' | 'taskRuns') => results.reduce((s, r) => s + r[k], 0);
  const work = (k: keyof LeaderWorkStats) => results.reduce((s, r) => s + (r.leaderWork?.[k] ?? 0), 0);
  const worst = (f: (r: Summary) => number | null | undefined) => results.reduce((m, r) => Math.max(m, f(r) ?? 0), 0);
  console.log(
    JSON.stringify({
      seeds: results.length,
      violations: failed.length,
      steps: sum('steps'),
      elections: sum('elections'),
      commits: sum('commits'),
      ops: sum('ops'),
      targetedDropped: results.reduce((s, r) => s + r.targeted.dropped, 0),
      targetedHeld: results.reduce((s, r) => s + r.targeted.held, 0),
      snapshotsMade: results.reduce((s, r) => s + r.snapshots.made, 0),
      snapshotsInstalled: results.reduce((s, r) => s + r.snapshots.installed, 0),
      maxLeaseAfterHealMs: worst((r) => r.leaseAfterHealMs),
      ...(args.membership
        ? {
            changesProposed: results.reduce((s, r) => s + (r.membership?.proposed ?? 0), 0),
            changesRefused: results.reduce((s, r) => s + (r.membership?.refused ?? 0), 0),
            changesCommitted: results.reduce((s, r) => s + (r.membership?.committed ?? 0), 0),
            twoVoterTries: results.reduce((s, r) => s + (r.membership?.twoVoterTries ?? 0), 0),
            retired: results.reduce((s, r) => s + (r.membership?.retired ?? 0), 0),
            maxFinalVoters: worst((r) => r.membership?.finalVoters),
          }
        : {}),
      ...(args.level === 'runtime'
        ? {
            lockGrants: sum('lockGrants'),
            taskRuns: sum('taskRuns'),
            forwards: work('forwards'),
            forwardRuns: work('forwardRuns'),
            fires: work('fires'),
            eventsPublished: work('eventsPublished'),
            eventsDelivered: work('eventsDelivered'),
            eventGaps: work('eventGaps'),
            settled: work('settled'),
            longestSettleMs: worst((r) => r.leaderWork?.longestSettleMs),
          }
        : {}),
      ms: Date.now() - started,
      level: args.level,
      ...(args.membership ? { membership: true } : {}),
      ...(args.variant ? { variant: args.variant } : {}),
      ...(failed.length ? { failedSeeds: failed.slice(0, 50).map((f) => f.seed) } : {}),
    }),
  );
  process.exitCode = failed.length > 0 ? 1 : 0;
}

function runWorker(job: Job): Promise<Summary[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`simulator worker exited with ${code}`)));
  });
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 2;
  });
} else {
  const job = workerData as Job;
  void (async () => {
    const out: Summary[] = [];
    for (const s of job.seeds) out.push(summarize(await runOne(s, job.args, false)));
    parentPort!.postMessage(out);
  })();
}
