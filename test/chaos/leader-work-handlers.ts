/**
 * The leader-work workloads as an application writes them, with the library's real decorators; each side effect is a
 * line in the node's effect log:
 * - a forwarded command whose body appends one line and returns;
 * - a scheduled singleton body that takes up to 3 steps, asking before each whether its run is still current;
 * - cluster events, and the notice of events this node can no longer deliver.
 */
import { Injectable } from '@nestjs/common';
import { Command, CommandHandler, EventsHandler, type ICommandHandler, type IEventHandler } from '@nestjs/cqrs';
import { Interval } from '@nestjs/schedule';
import {
  ClusterCoordinator,
  ClusterEvent,
  ClusterEventsMissed,
  eventIndex,
  ForwardToLeader,
  SingletonTask,
  type TaskRunContext,
} from '../../lib/index.js';
import { epochMs, type CommandResult } from '../support/node-protocol.js';
import { Prng } from '../support/prng.js';
import { EffectLog } from './effect-log.js';

export class ChaosCommand extends Command<CommandResult> {
  constructor(readonly id: string) {
    super();
  }
}

/** Runs on the leader whichever node got the command: the side effect that must happen at most once per command. */
@CommandHandler(ChaosCommand)
@ForwardToLeader()
export class ChaosCommandHandler implements ICommandHandler<ChaosCommand> {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly effects: EffectLog,
  ) {}

  async execute(cmd: ChaosCommand): Promise<CommandResult> {
    const at = epochMs();
    this.effects.append({ type: 'command', id: cmd.id, node: this.cluster.nodeId, at });
    return { node: this.cluster.nodeId, at };
  }
}

export const FIRE_TASK = 'chaos-fire';
export const FIRE_PERIOD_MS = 100;
const MAX_STEPS = 3;

@Injectable()
export class ChaosFireJob {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly effects: EffectLog,
  ) {}

  /**
   * Before each step: still the current run? The signal alone cannot tell after a pause (nothing has run to abort
   * it yet); hasLease() catches the clock up first. The time is read before asking, so a pause between the answer
   * and the write does not date the step later than the moment it was allowed.
   */
  @Interval(FIRE_PERIOD_MS)
  @SingletonTask({ name: FIRE_TASK })
  async fire(run: TaskRunContext): Promise<void> {
    // Drawn from the fire time: every node would plan the same steps for it.
    const plan = new Prng(run.fireTime / FIRE_PERIOD_MS);
    const of = plan.int(1, MAX_STEPS + 1);
    for (let step = 1; step <= of; step++) {
      const waitMs = plan.range(10, 40);
      const at = epochMs();
      if (run.signal.aborted || !this.cluster.hasLease()) return;
      this.effects.append({ type: 'step', fireTime: run.fireTime, token: run.token, term: run.term, step, of, node: this.cluster.nodeId, at });
      await pause(waitMs, run.signal);
    }
  }
}

@ClusterEvent()
export class ChaosEvent {
  constructor(readonly n: number) {}
}

/** Called synchronously inside EventBus.publish, so the line is written before the library counts it delivered. */
@EventsHandler(ChaosEvent)
export class ChaosEventsHandler implements IEventHandler<ChaosEvent> {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly effects: EffectLog,
  ) {}

  handle(e: ChaosEvent): void {
    this.effects.append({ type: 'event', index: eventIndex(e) ?? null, n: e.n, node: this.cluster.nodeId, at: epochMs() });
  }
}

@EventsHandler(ClusterEventsMissed)
export class ChaosEventsMissedHandler implements IEventHandler<ClusterEventsMissed> {
  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly effects: EffectLog,
  ) {}

  handle(e: ClusterEventsMissed): void {
    this.effects.append({ type: 'missed', after: e.after, upTo: e.upTo, node: this.cluster.nodeId, at: epochMs() });
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
