import type { ApplyContext, StateModule } from './state-module.js';

export interface EventCommand {
  /** The event's registered name (its class name unless the decorator says otherwise). */
  readonly name: string;
  readonly payload: unknown;
}

export interface CommittedEvent extends EventCommand {
  /** Log index of the entry: the same on every node, usable as an idempotency key. */
  readonly index: number;
}

/**
 * Cluster-wide events: publishing one is a log entry, so every node sees every event at the same log position, in
 * the same order. The module keeps no state of its own; it hands each committed event to the local listener.
 */
export class EventLogModule implements StateModule<EventCommand, { index: number }> {
  readonly name = 'event';
  private listener: ((e: CommittedEvent) => void) | null = null;
  /** Events applied before anyone listened (the log replays as the node starts, before the app is wired up). */
  private early: CommittedEvent[] = [];

  /** Receives events as they are applied (in log order), on the runtime's apply path: keep it cheap. */
  listen(fn: (e: CommittedEvent) => void): void {
    this.listener = fn;
    const early = this.early;
    this.early = [];
    for (const e of early) fn(e);
  }

  apply(cmd: EventCommand, ctx: ApplyContext): { index: number } {
    const e = { name: cmd.name, payload: cmd.payload, index: ctx.index };
    if (this.listener) this.listener(e);
    else this.early.push(e);
    return { index: ctx.index };
  }

  snapshot(): unknown {
    return null;
  }

  restore(): void {}
}
