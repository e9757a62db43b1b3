/**
 * The task ledger as every node reads it: how runs are stored under `<prefix>tasks/`, and this node's copy of them
 * (a read, then a watch) that runs()/latest() and the read barrier use. The writes are in etcd-tasks.ts.
 */
import { Range, type Etcd3, type IEvent, type IKeyValue } from 'etcd3';
import type { Clock, Timers } from '../../io/clock.js';
import { NoLeaderException } from '../errors.js';
import type { ClusterLogger } from '../logger.js';
import type { TaskOutcome, TaskRun } from '../state/task-ledger-module.js';
import { pack, unpack } from '../msgpack.js';
import { callOptions, isClosedClient, toClusterError } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { WatchedPrefix } from './watched-prefix.js';

/** A run as stored: its token is the key's create revision, known only once written, so it is not in the value. */
export type StoredRun = Omit<TaskRun, 'token'>;

/** A task's `~evicted` marker: the newest fire time trimmed (-Infinity: none) and the key's mod revision (0: absent). */
export interface Evicted {
  readonly upTo: number;
  readonly mod: number;
}

export const NOTHING_EVICTED: Evicted = Object.freeze({ upTo: -Infinity, mod: 0 });

const EVICTED_LEAF = '~evicted';
const READ_PAGE = 500;
/** How long a waiting read barrier lets the watch deliver before it checks etcd again. */
const WATCH_GRACE_MS = 50;


export function evictedKey(keys: EtcdKeys, task: string): string {
  return `${keys.taskPrefix(task)}${EVICTED_LEAF}`;
}

/** Run keys end in a zero-padded fire time, and task names are URI-encoded: only a marker ends in `/~evicted`. */
export function isEvictedMarker(key: Buffer | string): boolean {
  return key.toString().endsWith(`/${EVICTED_LEAF}`);
}

export function encodeRun(run: StoredRun): Buffer {
  // A copy: the packer reuses its buffer, and the request is serialized later.
  return Buffer.from(pack(run));
}

/** A stored run with its token (the key's create revision); null, with a warning, when the value is not one. */
export function decodeRun(kv: IKeyValue, logger: ClusterLogger): TaskRun | null {
  let v: Partial<StoredRun> | null;
  try {
    v = unpack(kv.value) as Partial<StoredRun> | null;
  } catch {
    v = null;
  }
  if (!v || typeof v.task !== 'string' || typeof v.fireTime !== 'number' || typeof v.outcome !== 'string') {
    logger.warn(`etcd key ${kv.key.toString()} does not hold a task run; ignored`);
    return null;
  }
  return Object.freeze({
    task: v.task,
    fireTime: v.fireTime,
    node: String(v.node),
    term: Number(v.term),
    token: revisionOf(kv.create_revision),
    start: Number(v.start),
    ...(v.end !== undefined ? { end: v.end } : {}),
    outcome: v.outcome as TaskOutcome,
    ...(v.error !== undefined ? { error: v.error } : {}),
  });
}

/** The marker a key-value holds (absent: nothing trimmed). */
export function evictedOf(kv: IKeyValue | undefined): Evicted {
  if (!kv) return NOTHING_EVICTED;
  const upTo = Number(kv.value.toString());
  return { upTo: Number.isFinite(upTo) ? upTo : -Infinity, mod: revisionOf(kv.mod_revision) };
}

/**
 * etcd3's errors as the library's (toClusterError). A closed client is added: it never sent the call, so it is
 * NoLeaderException too, not etcd3's own error type leaking out of `cluster.tasks`.
 */
export function ledgerError(e: unknown, what: string): Error {
  if (isClosedClient(e)) return new NoLeaderException(`etcd unreachable: ${what} failed: ${(e as Error).message}`);
  return toClusterError(e, what);
}

/** Every key under the ledger's prefix at one revision, in pages (etcd caps a response's size). */
export async function readLedgerKeys(client: Etcd3, keys: EtcdKeys, requestTimeoutMs: number): Promise<{ kvs: IKeyValue[]; at: number }> {
  const all = Range.prefix(keys.tasksPrefix);
  const kvs: IKeyValue[] = [];
  let start = all.start;
  let at: number | undefined;
  for (;;) {
    let range = client.getAll().inRange({ start, end: all.end }).limit(READ_PAGE).options(callOptions(requestTimeoutMs));
    if (at !== undefined) range = range.revision(at);
    const res = await range.exec();
    at ??= revisionOf(res.header.revision);
    kvs.push(...res.kvs);
    if (!res.more || res.kvs.length === 0) return { kvs, at };
    start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

export interface TaskMirrorDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly requestTimeoutMs: number;
  readonly logger: ClusterLogger;
  /** Monotonic: deadlines of the read barrier and of waiting for a write to show. */
  readonly clock: Clock;
  readonly timers: Timers;
}

interface TaskHistory {
  /** By fire time. */
  readonly runs: Map<number, TaskRun>;
  evicted: Evicted;
  /** Newest fire time first; rebuilt when the runs change. */
  sorted: TaskRun[] | null;
}

/** This node's copy of the ledger: every run and marker under the prefix, as of `revision`. */
export class TaskMirror {
  private readonly tasks = new Map<string, TaskHistory>();
  /** Every key of the copy, with the run it holds (null: a marker or foreign key): the read barrier counts them. */
  private readonly byKey = new Map<string, { task: string; fireTime: number } | null>();
  private readonly watch: WatchedPrefix;

  constructor(private readonly d: TaskMirrorDeps) {
    this.watch = new WatchedPrefix({
      client: d.client,
      prefix: d.keys.tasksPrefix,
      what: 'task runs',
      sink: { read: () => this.read(), apply: (evs) => this.apply(evs) },
      timers: d.timers,
      logger: d.logger,
      requestTimeoutMs: d.requestTimeoutMs,
    });
  }

  /** The newest etcd revision the copy has caught up to. */
  get revision(): number {
    return this.watch.revision;
  }

  open(): Promise<void> {
    return this.watch.start();
  }

  close(): Promise<void> {
    return this.watch.stop();
  }

  /** Newest fire time first: of `task`, or of every task. */
  runs(task?: string): readonly TaskRun[] {
    if (task !== undefined) return this.sorted(this.tasks.get(task));
    return [...this.tasks.values()].flatMap((h) => this.sorted(h)).sort((a, b) => b.fireTime - a.fireTime || b.start - a.start);
  }

  latest(task: string): TaskRun | undefined {
    return this.sorted(this.tasks.get(task))[0];
  }

  /** `task`'s marker as the copy has it. */
  evicted(task: string): Evicted {
    return this.tasks.get(task)?.evicted ?? NOTHING_EVICTED;
  }

  /** Resolves once the copy has caught up to etcd revision `rev`; rejects after `timeoutMs`. */
  async waitForRevision(rev: number, timeoutMs: number): Promise<void> {
    const deadline = this.d.clock.now() + timeoutMs;
    try {
      while (this.watch.revision < rev) {
        const left = deadline - this.d.clock.now();
        if (left <= 0) throw new Error(`the task ledger copy reached etcd revision ${this.watch.revision}, not ${rev}, within ${timeoutMs} ms`);
        // Most revisions change nothing under the prefix, and etcd tells a watch nothing then: ask whether that is so.
        if (!(await this.unchangedSince(left))) await this.nextAdvance(Math.min(left, WATCH_GRACE_MS));
      }
    } catch (e) {
      throw ledgerError(e, `catching the task ledger copy up to revision ${rev}`);
    }
  }

  /** After a write: lets the copy show it before returning (as the embedded ledger's applied copy does). Never throws. */
  settle(rev: number): Promise<void> {
    return this.watch.reach(rev, this.d.requestTimeoutMs);
  }

  /**
   * Whether nothing under the prefix changed after the copy's revision: no key with a newer mod revision (puts) and as
   * many keys as the copy has (deletes). Then the copy equals etcd's state at the read's revision, and it moves there.
   */
  private async unchangedSince(timeoutMs: number): Promise<boolean> {
    const from = this.watch.revision;
    const keys = this.byKey.size;
    const res = await this.d.client
      .getAll()
      .prefix(this.d.keys.tasksPrefix)
      .minModRevision(from + 1)
      .limit(1)
      .options(callOptions(Math.min(timeoutMs, this.d.requestTimeoutMs)))
      .exec();
    // With a revision filter etcd counts every key in the range, not just those that pass it.
    if (res.kvs.length > 0 || Number(res.count) !== keys) return false;
    return this.watch.advance(revisionOf(res.header.revision), from);
  }

  private nextAdvance(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.d.timers.setTimeout(() => (off(), resolve()), ms);
      const off = this.watch.onAdvance(() => (timer.cancel(), resolve()));
    });
  }

  /** The copy, replaced by a fresh read. */
  private async read(): Promise<number> {
    const { kvs, at } = await readLedgerKeys(this.d.client, this.d.keys, this.d.requestTimeoutMs);
    this.tasks.clear();
    this.byKey.clear();
    for (const kv of kvs) this.put(kv);
    return at;
  }

  private apply(events: readonly IEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'Put') this.put(ev.kv);
      else this.remove(ev.kv.key.toString());
    }
  }

  private put(kv: IKeyValue): void {
    const key = kv.key.toString();
    this.remove(key);
    const where = this.parseKey(key);
    if (!where) return void this.byKey.set(key, null);
    const h = this.history(where.task);
    if (where.leaf === EVICTED_LEAF) {
      h.evicted = evictedOf(kv);
      return void this.byKey.set(key, null);
    }
    const run = decodeRun(kv, this.d.logger);
    if (!run) return void this.byKey.set(key, null);
    h.runs.set(run.fireTime, run);
    h.sorted = null;
    this.byKey.set(key, { task: where.task, fireTime: run.fireTime });
  }

  private remove(key: string): void {
    if (!this.byKey.has(key)) return;
    const held = this.byKey.get(key);
    this.byKey.delete(key);
    if (held) {
      const h = this.tasks.get(held.task);
      if (h?.runs.delete(held.fireTime)) h.sorted = null;
    } else {
      const where = this.parseKey(key);
      const h = where?.leaf === EVICTED_LEAF ? this.tasks.get(where.task) : undefined;
      if (h) h.evicted = NOTHING_EVICTED;
    }
  }

  private parseKey(key: string): { task: string; leaf: string } | null {
    const rest = key.slice(this.d.keys.tasksPrefix.length);
    const slash = rest.lastIndexOf('/');
    if (slash < 0) return null;
    try {
      return { task: decodeURIComponent(rest.slice(0, slash)), leaf: rest.slice(slash + 1) };
    } catch {
      return null;
    }
  }

  private history(task: string): TaskHistory {
    let h = this.tasks.get(task);
    if (!h) {
      h = { runs: new Map(), evicted: NOTHING_EVICTED, sorted: null };
      this.tasks.set(task, h);
    }
    return h;
  }

  private sorted(h: TaskHistory | undefined): TaskRun[] {
    if (!h) return [];
    h.sorted ??= [...h.runs.values()].sort((a, b) => b.fireTime - a.fireTime || b.start - a.start);
    return h.sorted;
  }
}
