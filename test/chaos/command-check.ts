/**
 * The forwarded commands against the effect logs (pure: no I/O). Every command id is sent once, so across all nodes'
 * logs together:
 * - an acknowledged command ran exactly once, on the node its handler answered from;
 * - one that failed with NoLeaderException (the library's "surely not run") ran 0 times;
 * - any other failure (ForwardOutcomeUnknownException, a lost IPC answer, a node that died mid-call): at most once;
 * - no command ran twice, and none ran that no client sent.
 */
import type { CommandLine, EffectLine } from './effect-log.js';
import type { CommandRecord } from './history.js';
import { capped, ms } from './violations.js';

export interface CommandCheckResult {
  readonly violations: string[];
  readonly sent: number;
  readonly ok: number;
  readonly notRun: number;
  readonly unknown: number;
  /** Command lines in the effect logs: commands that ran. */
  readonly ran: number;
  /** Commands of unknown outcome that did run. */
  readonly unknownRan: number;
}

export function checkCommands(records: readonly CommandRecord[], lines: readonly EffectLine[]): CommandCheckResult {
  const ran = new Map<string, CommandLine[]>();
  for (const l of lines) {
    if (l.type !== 'command') continue;
    const runs = ran.get(l.id);
    if (runs) runs.push(l);
    else ran.set(l.id, [l]);
  }
  const twice: string[] = [];
  const wrong: string[] = [];
  const unsent: string[] = [];
  const sent = new Map(records.map((r) => [r.id, r]));
  for (const [id, runs] of ran) {
    const record = sent.get(id);
    if (runs.length > 1) twice.push(`command ${id} ran ${runs.length} times (${record ? describe(record) : 'never sent'}): ${runs.map(show).join(', ')}`);
    if (!record) unsent.push(`command ${id} ran but no client sent it: ${runs.map(show).join(', ')}`);
  }
  for (const r of records) {
    const runs = ran.get(r.id) ?? [];
    if (r.outcome === 'ok' && runs.length === 0) wrong.push(`command ${r.id} (${describe(r)}) never ran`);
    if (r.outcome === 'ok' && runs.length === 1 && runs[0]!.node !== r.ranOn) wrong.push(`command ${r.id} (${describe(r)}) ran on ${runs[0]!.node} instead`);
    if (r.outcome === 'notRun' && runs.length > 0) wrong.push(`command ${r.id} (${describe(r)}) ran: ${runs.map(show).join(', ')}`);
  }
  const count = (o: CommandRecord['outcome']) => records.filter((r) => r.outcome === o).length;
  return {
    violations: [...capped(twice), ...capped(wrong), ...capped(unsent)],
    sent: records.length,
    ok: count('ok'),
    notRun: count('notRun'),
    unknown: count('unknown'),
    ran: [...ran.values()].reduce((a, runs) => a + runs.length, 0),
    unknownRan: records.filter((r) => r.outcome === 'unknown' && ran.has(r.id)).length,
  };
}

function describe(r: CommandRecord): string {
  const how = r.outcome === 'ok' ? `acknowledged as run on ${r.ranOn}` : r.outcome === 'notRun' ? `failed with ${r.error}: surely not run` : `ended with ${r.error}`;
  return `sent to ${r.node} at ${ms(r.call)}, ${how} at ${ms(r.return)}`;
}

const show = (l: CommandLine): string => `on ${l.node} at ${ms(l.at)}`;
