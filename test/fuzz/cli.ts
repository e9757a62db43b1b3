/**
 * `npm run fuzz -- [--count N] [--seed S] [--port P] [--concurrency C]`: sends at least N (default 1,000,000) random
 * and mutated frames at a live three-node cluster on 127.0.0.1 (ports P … P+8, default 18750) and checks that
 * nothing crashes, every refusable input is dropped with a logged reason, and the cluster keeps committing.
 * Progress goes to stderr; the last line on stdout is the JSON summary. Exits 0 when the run passed, 1 when it did
 * not, 2 on bad arguments.
 */
import { wholeNumberArgs } from '../support/cli-args.js';
import { runFuzz, type FuzzOptions } from './run.js';

function parseArgs(argv: readonly string[]): FuzzOptions {
  const a = wholeNumberArgs(
    argv,
    { count: { default: 1_000_000, min: 1 }, seed: { default: 1, min: 0 }, port: { default: 18750, min: 1024 }, concurrency: { default: 12, min: 1 } },
    '--count N --seed S --port P --concurrency C',
  );
  return { count: a.count, seed: a.seed, basePort: a.port, concurrency: a.concurrency };
}

async function main(): Promise<void> {
  let options: FuzzOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  const started = Date.now();
  const summary = await runFuzz({ ...options, log: (m) => console.error(`[fuzz +${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`) });
  console.log(JSON.stringify(summary));
  process.exit(summary.pass ? 0 : 1);
}

void main().catch((e: Error) => {
  console.error(`fuzz run failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
