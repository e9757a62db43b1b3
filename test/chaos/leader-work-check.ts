/**
 * The leader-work checks together (pure: no I/O): forwarded commands (command-check.ts), singleton fires
 * (fire-check.ts) and cluster events (event-check.ts), judged on what the clients recorded and what the nodes wrote
 * to their effect logs.
 */
import { checkCommands, type CommandCheckResult } from './command-check.js';
import type { EffectLine } from './effect-log.js';
import { checkEvents, type EventCheckResult } from './event-check.js';
import { checkFires, type FireCheckResult } from './fire-check.js';
import type { CommandRecord, PublishRecord } from './history.js';
import { capped } from './violations.js';

export interface LeaderWorkHistory {
  readonly commands: readonly CommandRecord[];
  readonly publishes: readonly PublishRecord[];
  /** Each node's effect log, lines in file order. */
  readonly logs: Readonly<Record<string, readonly EffectLine[]>>;
  /** Lines of each node's log that could not be read. */
  readonly unreadable: Readonly<Record<string, readonly string[]>>;
  /** Nodes that must have delivered every event by the end (running once the faults healed). */
  readonly atEnd: readonly string[];
}

type Counts<T> = Omit<T, 'violations'>;

export interface LeaderWorkResult {
  readonly violations: string[];
  readonly commands: Counts<CommandCheckResult>;
  readonly fires: Counts<FireCheckResult> & { readonly toleranceMs: number };
  readonly events: Counts<EventCheckResult>;
}

export function checkLeaderWork(h: LeaderWorkHistory, toleranceMs: number): LeaderWorkResult {
  const all = Object.values(h.logs).flat();
  const { violations: commandViolations, ...commands } = checkCommands(h.commands, all);
  const { violations: fireViolations, ...fires } = checkFires(all, toleranceMs);
  const { violations: eventViolations, ...events } = checkEvents(h.logs, h.publishes, h.atEnd);
  const unreadable = Object.entries(h.unreadable).flatMap(([node, rows]) => rows.map((row) => `${node}'s effect log has an unreadable line: ${row.slice(0, 200)}`));
  return {
    violations: [...capped(unreadable), ...commandViolations, ...fireViolations, ...eventViolations],
    commands,
    fires: { ...fires, toleranceMs },
    events,
  };
}
