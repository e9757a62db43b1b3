/**
 * A node's effect log: one JSON line per side effect of the leader-work workloads, appended by the node process to a
 * file of its own outside its dataDir. Every line is one write(2) on a file opened for appending, made before the
 * node acknowledges anything that depends on it: a `kill -9` cannot lose it (the kernel keeps written data; only a
 * power cut would), so the file is the ground truth of what ran where.
 */
import { appendFileSync, closeSync, openSync } from 'node:fs';

/** The node process started (each start is an incarnation). */
export interface BootLine {
  readonly type: 'boot';
  readonly node: string;
  readonly pid: number;
  readonly at: number;
}

/**
 * A graceful stop (SIGTERM or the stop op): `stop` when the app began closing, `closed` once it had (the node is
 * stopped), each with the index of the last event the node counted as delivered (ClusterCoordinator.eventPosition).
 */
export interface StopLine {
  readonly type: 'stop' | 'closed';
  readonly position: number;
  readonly node: string;
  readonly at: number;
}

/** The forwarded chaos command `id` ran its body on `node`. */
export interface CommandLine {
  readonly type: 'command';
  readonly id: string;
  readonly node: string;
  readonly at: number;
}

/** Step `step` of `of` of the singleton run with `token` for `fireTime`, taken after the run checked it still leads. */
export interface StepLine {
  readonly type: 'step';
  readonly fireTime: number;
  readonly token: number;
  readonly term: number;
  readonly step: number;
  readonly of: number;
  readonly node: string;
  readonly at: number;
}

/** The @EventsHandler got the chaos event `n` with eventIndex() `index` (null: the event had none). */
export interface EventLine {
  readonly type: 'event';
  readonly index: number | null;
  readonly n: number;
  readonly node: string;
  readonly at: number;
}

/** ClusterEventsMissed: the events in (after, upTo] that this node had not delivered are lost to it. */
export interface MissedLine {
  readonly type: 'missed';
  readonly after: number;
  readonly upTo: number;
  readonly node: string;
  readonly at: number;
}

export type EffectLine = BootLine | StopLine | CommandLine | StepLine | EventLine | MissedLine;

/** Appends lines to one node's effect log. */
export class EffectLog {
  private readonly fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'a');
  }

  append(line: EffectLine): void {
    appendFileSync(this.fd, `${JSON.stringify(line)}\n`);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export interface ParsedEffectLog {
  readonly lines: EffectLine[];
  /** Lines that are not effect lines (a final line still being written is not one of them: it is left out). */
  readonly unreadable: string[];
}

/**
 * Parses a log's text; `at` goes through `time` (e.g. onto the chaos history's clock). A last line without its newline
 * is one a live node was writing while the file was read: it is left out.
 */
export function parseEffectLog(text: string, time: (epochMs: number) => number = (t) => t): ParsedEffectLog {
  const rows = text.split('\n');
  rows.pop(); // '' after the final newline, or the partial line being written
  const lines: EffectLine[] = [];
  const unreadable: string[] = [];
  for (const row of rows) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(row);
    } catch {
      unreadable.push(row);
      continue;
    }
    if (isEffectLine(parsed)) lines.push({ ...parsed, at: time(parsed.at) });
    else unreadable.push(row);
  }
  return { lines, unreadable };
}

function isEffectLine(x: unknown): x is EffectLine {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  const num = (k: string) => typeof r[k] === 'number';
  if (typeof r.node !== 'string' || !num('at')) return false;
  switch (r.type) {
    case 'boot':
      return num('pid');
    case 'stop':
    case 'closed':
      return num('position');
    case 'command':
      return typeof r.id === 'string';
    case 'step':
      return num('fireTime') && num('token') && num('term') && num('step') && num('of');
    case 'event':
      return num('n') && (r.index === null || num('index'));
    case 'missed':
      return num('after') && num('upTo');
    default:
      return false;
  }
}
