/**
 * `npm run bench -- forward`: the latency a @ForwardToLeader command adds when sent from a follower, compared with
 * the same command executed on the leader. Three Nest apps in separate processes would add process start-up noise
 * and nothing else, so they share this process; the messages still cross real TCP sockets on 127.0.0.1.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { Command, CommandBus, CommandHandler, CqrsModule, type ICommandHandler } from '@nestjs/cqrs';
import { NestFactory } from '@nestjs/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, ForwardToLeader } from '../lib/index.js';
import type { Measurement } from './measure.js';

class Ping extends Command<number> {
  constructor(readonly n: number) {
    super();
  }
}

@CommandHandler(Ping)
@ForwardToLeader()
class PingHandler implements ICommandHandler<Ping> {
  async execute(p: Ping) {
    return p.n + 1;
  }
}

@Module({ providers: [PingHandler] })
class PingModule {}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(bus: CommandBus, count: number): Promise<{ p50: number; p99: number; mean: number }> {
  for (let i = 0; i < 200; i++) await bus.execute(new Ping(i)); // warm up
  const us: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    await bus.execute(new Ping(i));
    us.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  us.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x) / 1000;
  return { p50: r(percentile(us, 50)), p99: r(percentile(us, 99)), mean: r(us.reduce((a, b) => a + b, 0) / us.length) };
}

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
    await apps[0]!.get(ClusterCoordinator).waitForLeader();
    const leader = apps.find((a) => a.get(ClusterCoordinator).isLeader)!;
    const follower = apps.find((a) => a !== leader)!;
    const count = quick ? 2000 : 20000;
    const local = await measure(leader.get(CommandBus), count);
    const forwarded = await measure(follower.get(CommandBus), count);
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
    };
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
