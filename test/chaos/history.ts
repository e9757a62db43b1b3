/**
 * What the chaos clients saw: kv operations in the form the linearizability checker takes, lock grants, what the
 * holders' nodes said about their leases, forwarded commands and published events with their outcomes, and a count
 * of every operation by kind and outcome. Times are ms since
 * the history began, from epochMs() in this process or the nodes' (one machine: comparable within well under 1 ms).
 */
import type { KvOperation } from '../sim/kv-model.js';
import { epochMs } from '../support/node-protocol.js';
import type { Prng } from '../support/prng.js';
import { RemoteError } from '../support/process-cluster.js';

/** ok: took effect as reported; fail: surely did not take effect; unknown: may or may not have. */
export type Outcome = 'ok' | 'fail' | 'unknown';

export type OpKind =
  | 'get'
  | 'put'
  | 'cas'
  | 'delete'
  | 'lockAcquire'
  | 'lockHeld'
  | 'lockRelease'
  /** A lock holder's node blocked its event loop for longer than the lock's TTL. */
  | 'holderStall'
  | 'resourceRead'
  | 'resourceWrite'
  /** A forwarded chaos command (leader-work mode). */
  | 'command'
  /** A chaos event published through a node's EventBus (leader-work mode). */
  | 'publish';

export type OutcomeCounts = Record<Outcome, number>;

/** One successful acquire: `holder` names this grant (client and attempt) and is unique in a run. */
export interface Grant {
  readonly holder: string;
  readonly node: string;
  readonly name: string;
  readonly token: number;
  /** Around the acquire request, in this process. */
  readonly call: number;
  readonly return: number;
  /** When acquire resolved in the node process. */
  readonly acquiredAt: number;
}

/** A holder's node answering whether the lock is still held (DistributedLock.held), at `at` (its clock). */
export interface Belief {
  readonly holder: string;
  readonly name: string;
  readonly token: number;
  readonly held: boolean;
  readonly at: number;
}

/**
 * A forwarded command as its client saw it. ok: it ran (on `ranOn`); notRun: NoLeaderException, the library's
 * "surely not run"; unknown: anything else (ForwardOutcomeUnknownException, a lost IPC answer, a node that died).
 */
export interface CommandRecord {
  readonly id: string;
  /** The node the client asked. */
  readonly node: string;
  readonly outcome: 'ok' | 'notRun' | 'unknown';
  /** With ok: the node whose handler ran it, as the handler answered. */
  readonly ranOn?: string;
  /** Unless ok: the error's name (errorName). */
  readonly error?: string;
  readonly call: number;
  readonly return: number;
}

/** A published chaos event: ok with the log index it was committed at, or unknown (it may or may not be in the log). */
export interface PublishRecord {
  readonly n: number;
  readonly node: string;
  readonly outcome: 'ok' | 'unknown';
  readonly index?: number;
  readonly error?: string;
  readonly call: number;
  readonly return: number;
}

/** What every chaos client gets: its id, its own PRNG stream, the shared history, and when to stop. */
export interface ClientBase {
  readonly id: number;
  readonly rng: Prng;
  readonly history: History;
  /** True once the client should stop; checked before every operation. */
  readonly done: () => boolean;
}

export class History {
  private readonly origin = epochMs();
  readonly kv: KvOperation[] = [];
  readonly grants: Grant[] = [];
  readonly beliefs: Belief[] = [];
  /** When each lock holder asked its node to release, by holder. */
  readonly releasedAt = new Map<string, number>();
  readonly commands: CommandRecord[] = [];
  readonly publishes: PublishRecord[] = [];
  /** Errors by operation kind and error name, for the summary. */
  readonly errors: Record<string, Record<string, number>> = {};
  private readonly outcomes = new Map<OpKind, OutcomeCounts>();

  /** ms since the history began, in this process. */
  now(): number {
    return this.fromEpoch(epochMs());
  }

  /** An epochMs() reading from any process on this machine, as ms since the history began (µs precision). */
  fromEpoch(t: number): number {
    return Math.round((t - this.origin) * 1000) / 1000;
  }

  count(kind: OpKind, outcome: Outcome): void {
    let c = this.outcomes.get(kind);
    if (!c) {
      c = { ok: 0, fail: 0, unknown: 0 };
      this.outcomes.set(kind, c);
    }
    c[outcome]++;
  }

  error(kind: OpKind, e: unknown): void {
    const name = errorName(e);
    const byName = (this.errors[kind] ??= {});
    byName[name] = (byName[name] ?? 0) + 1;
  }

  counts(): Partial<Record<OpKind, OutcomeCounts>> {
    return Object.fromEntries(this.outcomes);
  }
}

/** The node's error name, or what happened to the request on the way (the node exited, no answer in time). */
export function errorName(e: unknown): string {
  if (e instanceof RemoteError) return e.name;
  const message = e instanceof Error ? e.message : String(e);
  if (message.endsWith(' exited')) return 'NodeExited';
  if (message.includes('no answer to')) return 'IpcTimeout';
  if (message.includes(' not sent (')) return 'IpcNotSent';
  if (message.endsWith('is not running')) return 'NodeNotRunning';
  return e instanceof Error ? e.name : 'unknown';
}
