/**
 * `npm run chaos -- [--seconds S] [--seed N] [--nodes 3|5] [--port P] [--netns] [--no-leader-work]`: one chaos run
 * against real node processes (ports P … P+nodes−1 on 127.0.0.1, default 18740; with --netns each node in its own
 * network namespace, and the nemesis also cuts links between them — needs root). The nodes run as Nest apps with the
 * leader-work workloads unless --no-leader-work (then: the plain node program, kv and lock clients only). Progress goes to stderr; the last line on stdout is
 * the JSON summary. Exits 0 when the run passed, 1 when a check failed or could not decide, 2 on bad arguments (or
 * --netns where namespaces cannot be used). Ctrl-C (or SIGTERM) ends the fault phase early and still checks what
 * was recorded; a second one kills the nodes, removes the namespaces and exits.
 */
import { wholeNumberArgs } from '../support/cli-args.js';
import { NetnsLab } from '../support/netns.js';
import { runChaos, type ChaosOptions } from './runner.js';

const USAGE = '--seconds S --seed N --nodes 3|5 --port P [--netns] [--no-leader-work]';
const FLAGS = ['--netns', '--no-leader-work'];

function parseArgs(argv: readonly string[]): Omit<ChaosOptions, 'log' | 'signal'> {
  // The flags without a value; the rest are `--name number` pairs.
  const partitions = argv.includes('--netns');
  const leaderWork = !argv.includes('--no-leader-work');
  const a = wholeNumberArgs(
    argv.filter((x) => !FLAGS.includes(x)),
    { seconds: { default: 60, min: 1 }, seed: { default: 1, min: 0 }, nodes: { default: 3, min: 3 }, port: { default: 18740, min: 1024 } },
    USAGE,
  );
  if (a.nodes !== 3 && a.nodes !== 5) throw new Error(`--nodes expects 3 or 5, got ${a.nodes}`);
  if (partitions) {
    const why = NetnsLab.unavailable();
    if (why !== null) throw new Error(`--netns: network namespaces cannot be used here: ${why}`);
  }
  return { seconds: a.seconds, seed: a.seed, nodes: a.nodes, basePort: a.port, leaderWork, ...(partitions ? { partitions } : {}) };
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  const abort = new AbortController();
  const stopEarly = (sig: NodeJS.Signals) => {
    // The runner's exit hook kills the nodes on the second one.
    if (abort.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
    console.error(`${sig}: ending the fault phase early (again to quit at once)`);
    abort.abort();
  };
  process.on('SIGINT', stopEarly);
  process.on('SIGTERM', stopEarly);
  const started = Date.now();
  const summary = await runChaos({ ...args, signal: abort.signal, log: (m) => console.error(`[chaos +${((Date.now() - started) / 1000).toFixed(1)} s] ${m}`) });
  for (const v of summary.violations) console.error(`VIOLATION: ${v}`);
  console.log(JSON.stringify(summary));
  process.exitCode = summary.result === 'pass' ? 0 : 1;
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
