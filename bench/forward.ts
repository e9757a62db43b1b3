/**
 * `npm run bench -- forward`: the latency a @ForwardToLeader command adds when sent from a follower, compared with
 * the same command executed on the leader. Three Nest apps in separate processes would add process start-up noise
 * and nothing else, so they share this process; the messages still cross real TCP sockets on 127.0.0.1.
 */
import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { Command, CommandBus, CommandHandler, CqrsModule, type ICommandHandler } from '@nestjs/cqrs';
import { NestFactory } from '@nestjs/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, ForwardToLeader } from '../lib/index.js';
import type { Measurement } from './measure.js';

/** Answers with the node it ran on, so a command that did not run on the leader is caught. */
class Ping extends Command<string> {
  constructor(readonly n: number) {
    super();
  }
}

@CommandHandler(Ping)
@ForwardToLeader()
class PingHandler implements ICommandHandler<Ping> {
  constructor(private readonly cluster: ClusterCoordinator) {}

  async execute() {
    return this.cluster.nodeId;
  }
}

@Module({ providers: [PingHandler] })
class PingModule {}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Latencies {
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  /** Commands that ran on another node than `leader`: leadership moved during the measurement. */
  readonly elsewhere: number;
}

/**
 * A local command completes in microtasks, without yielding: a long loop of them would starve the timers of the three
 * apps sharing this process (heartbeats, elections) and move leadership. Yield every this many commands.
 */
const YIELD_EVERY = 100;

async function measure(bus: CommandBus, count: number, leader: string): Promise<Latencies> {
  for (let i = 0; i < 200; i++) await bus.execute(new Ping(i)); // warm up
  const us: number[] = [];
  let elsewhere = 0;
  for (let i = 0; i < count; i++) {
    if (i % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    const t = process.hrtime.bigint();
    const ranOn = await bus.execute(new Ping(i));
    us.push(Number(process.hrtime.bigint() - t) / 1000);
    if (ranOn !== leader) elsewhere++;
  }
  us.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x) / 1000;
  return { p50: r(percentile(us, 50)), p99: r(percentile(us, 99)), mean: r(us.reduce((a, b) => a + b, 0) / us.length), elsewhere };
}

/** The app whose node leads, once one does (bounded). */
async function leaderOf(apps: readonly INestApplicationContext[]): Promise<INestApplicationContext> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const leader = apps.find((a) => a.get(ClusterCoordinator).isLeader);
    if (leader) return leader;
    if (Date.now() > deadline) throw new Error('forward benchmark: no app leads after 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Attempts at a measurement during which leadership stayed put. */
const ATTEMPTS = 3;

/** Latencies in ms of the same command executed on the leader (local) and sent from a follower (forwarded). */
export async function runForwardBench(quick: boolean): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), 'catga-bench-fwd-'));
  const ids = ['f1', 'f2', 'f3'];
  const members = ids.map((id, i) => `${id}=127.0.0.1:${18701 + i}`);
  const quiet = { log() {}, warn() {}, error() {} };
  const apps = await Promise.all(
    ids.map((id) =>
      NestFactory.createApplicationContext(
        {
          module: class BenchApp {},
          imports: [
            CqrsModule.forRoot(),
            CatgaClusterModule.forRoot({ nodeId: id, members, dataDir: join(dir, id), secret: 'bench-secret', logger: quiet }),
            PingModule,
          ],
        },
        { logger: false },
      ),
    ),
  );
  try {
    const count = quick ? 2000 : 20000;
    for (let attempt = 1; ; attempt++) {
      const leader = await leaderOf(apps);
      const follower = apps.find((a) => a !== leader)!;
      const leaderId = leader.get(ClusterCoordinator).nodeId;
      const local = await measure(leader.get(CommandBus), count, leaderId);
      const forwarded = await measure(follower.get(CommandBus), count, leaderId);
      if (local.elsewhere + forwarded.elsewhere === 0) {
        return {
          commands: count,
          addedP50Ms: +(forwarded.p50 - local.p50).toFixed(3),
          addedP99Ms: +(forwarded.p99 - local.p99).toFixed(3),
          localP50Ms: local.p50,
          localP99Ms: local.p99,
          localMeanMs: local.mean,
          forwardedP50Ms: forwarded.p50,
          forwardedP99Ms: forwarded.p99,
          forwardedMeanMs: forwarded.mean,
          attempts: attempt,
        };
      }
      const moved = `${local.elsewhere + forwarded.elsewhere} of ${2 * count} commands ran on another node than ${leaderId}`;
      if (attempt === ATTEMPTS) throw new Error(`forward benchmark: leadership moved in each of ${ATTEMPTS} attempts (last: ${moved})`);
      process.stderr.write(`forward benchmark: ${moved}; measuring again\n`);
    }
  } finally {
    await Promise.all(apps.map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runForwardBench(process.argv.includes('--quick')).then(
    (r) => console.log(JSON.stringify(r)),
    (e: Error) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
