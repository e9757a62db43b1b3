/**
 * The node program's leader-work mode (CATGA_TEST_APP=leader-work): a Nest application context, no HTTP, with the
 * cluster module and the chaos workloads' handlers (leader-work-handlers.ts). test/e2e/node-main.ts loads this file
 * only in that mode, so its default mode never loads Nest.
 *
 * The clock: the nemesis skews nodes' monotonic clocks through createCluster's internal second parameter, which the
 * module's own coordinator factory does not pass. The app is therefore built with Nest's testing module builder, whose
 * overrideProvider is Nest's public way to replace one provider: ClusterCoordinator comes from createCluster with the
 * same options plus the skewed clock; every other provider of the module is its own.
 */
import type { LoggerService } from '@nestjs/common';
import { CommandBus, CqrsModule, EventBus } from '@nestjs/cqrs';
import { ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { createCluster } from '../../lib/cluster/create-cluster.js';
import type { Clock } from '../../lib/io/clock.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import type { RuntimeStatus } from '../../lib/cluster/raft-runtime.js';
import { CatgaClusterModule, ClusterCoordinator, type ClusterModuleOptions } from '../../lib/index.js';
import { epochMs, type CommandResult, type PublishResult } from '../support/node-protocol.js';
import { EffectLog } from './effect-log.js';
import { ChaosCommand, ChaosCommandHandler, ChaosEvent, ChaosEventsHandler, ChaosEventsMissedHandler, ChaosFireJob } from './leader-work-handlers.js';

/** What the node program's IPC ops need from the app. */
export interface LeaderWork {
  /** Executes the chaos command `id` on the CommandBus (the handler forwards it to the leader). */
  execute(id: string): Promise<CommandResult>;
  /** Publishes chaos event `n` on the EventBus; resolves with its log index once committed. */
  publish(n: number): Promise<PublishResult>;
}

export interface LeaderWorkApp {
  readonly cluster: ClusterCoordinator;
  /** status() right after createCluster returned: what the node recovered from its dataDir. */
  readonly bootStatus: RuntimeStatus;
  readonly work: LeaderWork;
  /** Closes the app (once, however often asked): shutdown hooks run, so a leader hands over before the node stops. */
  close(): Promise<void>;
}

export interface LeaderWorkAppOptions {
  /** The options the node program would pass to createCluster (the rest comes from the CATGA_* environment). */
  readonly cluster: ClusterModuleOptions & { readonly logger: ClusterLogger };
  /** The node's skewed monotonic clock, if any. */
  readonly clock: Clock | undefined;
  readonly effectLogPath: string;
}

/** Appends this incarnation's boot line, then boots the app; resolves once it bootstrapped (a leader is known). */
export async function startLeaderWorkApp(o: LeaderWorkAppOptions): Promise<LeaderWorkApp> {
  const effects = new EffectLog(o.effectLogPath);
  const nodeId = o.cluster.nodeId ?? process.env.CATGA_NODE_ID ?? 'node1';
  effects.append({ type: 'boot', node: nodeId, pid: process.pid, at: epochMs() });
  // Metrics off: the module's metrics would be wired by its own coordinator factory, replaced here.
  const options: ClusterModuleOptions = { ...o.cluster, metrics: false };
  const boot: { status?: RuntimeStatus } = {};
  const moduleRef = await Test.createTestingModule({
    imports: [CqrsModule.forRoot(), ScheduleModule.forRoot(), CatgaClusterModule.forRoot(options)],
    providers: [
      { provide: EffectLog, useValue: effects },
      ChaosCommandHandler,
      ChaosFireJob,
      ChaosEventsHandler,
      ChaosEventsMissedHandler,
    ],
  })
    .overrideProvider(ClusterCoordinator)
    .useFactory({
      factory: async () => {
        const cluster = await createCluster(o.cluster, { clock: o.clock });
        boot.status = cluster.status();
        return cluster;
      },
    })
    .setLogger(nestLogger(o.cluster.logger))
    .compile();
  await moduleRef.init();
  const cluster = moduleRef.get(ClusterCoordinator);
  const commands = moduleRef.get(CommandBus);
  const events = moduleRef.get(EventBus);
  const close = async () => {
    effects.append({ type: 'stop', position: cluster.eventPosition, node: nodeId, at: epochMs() });
    await moduleRef.close();
    effects.append({ type: 'closed', position: cluster.eventPosition, node: nodeId, at: epochMs() });
    effects.close();
  };
  let closing: Promise<void> | null = null;
  return {
    cluster,
    bootStatus: boot.status ?? cluster.status(),
    work: {
      execute: (id) => commands.execute(new ChaosCommand(id)),
      publish: async (n) => committedIndex(await events.publish(new ChaosEvent(n))),
    },
    // Once: SIGTERM and the stop op may both ask.
    close: () => (closing ??= close()),
  };
}

/** The cluster module's EventBus publisher answers a cluster event's publish with the committed entry's index. */
function committedIndex(published: unknown): PublishResult {
  const index = (published as { index?: unknown } | null | undefined)?.index;
  if (typeof index !== 'number') throw new Error(`EventBus.publish did not answer with the event's log index (got ${JSON.stringify(published)})`);
  return { index };
}

/** Nest's own log lines (the library's included) through the node's logger; debug and verbose lines are dropped. */
function nestLogger(logger: ClusterLogger): LoggerService {
  // Nest passes the context last, after a stack for errors.
  const line = (message: unknown, rest: readonly unknown[]) => [...rest.slice(-1), message, ...rest.slice(0, -1)].map(String).join(': ');
  return {
    log: (message: unknown, ...rest: unknown[]) => logger.log(line(message, rest)),
    warn: (message: unknown, ...rest: unknown[]) => logger.warn(line(message, rest)),
    error: (message: unknown, ...rest: unknown[]) => logger.error(line(message, rest)),
  };
}
