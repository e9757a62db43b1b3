import { Packr } from 'msgpackr';
import { Range, type DeleteBuilder, type Etcd3, type IEvent, type IKeyValue, type IResponseOp, type PutBuilder } from 'etcd3';
import type { NodeId } from '../../raft/index.js';
import { systemTimers, type Timers } from '../../io/clock.js';
import type { TaskRecords } from '../backend.js';
import { NotLeaderException } from '../errors.js';
import type { ClusterLogger } from '../logger.js';
import { TASK_RUNS_KEPT, type TaskOutcome, type TaskRun, type TaskStartResult } from '../state/task-ledger-module.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { WatchedPrefix } from './watched-prefix.js';

export interface EtcdTasksDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly requestTimeoutMs: number;
  readonly logger: ClusterLogger;
  /** Wall-clock ms for a run's start and end. */
  readonly wallClock: () => number;
  /** This node's election key while it leads (null otherwise): a start is a transaction guarded by `Create(ownKey) == term`. */
  readonly ownKey: () => string | null;
  /** For the watch's retry back-off; system timers when omitted. */
  readonly timers?: Timers;
}

/** A run as stored: its token is the key's create revision, known only once written, so it is not in the value. */
type StoredRun = Omit<TaskRun, 'token'>;

interface TaskHistory {
  /** By fire time. */
  readonly runs: Map<number, TaskRun>;
  /** Highest fire time trimmed (-Infinity: none) and the mod revision of the `~evicted` key holding it (0: absent). */
  evictedUpTo: number;
  evictedMod: number;
  /** Newest fire time first; rebuilt when the runs change. */
  sorted: TaskRun[] | null;
}

/** The `~evicted` marker as a start saw it: it guards the start, so a concurrent trim sends it round again. */
interface Evicted {
  readonly upTo: number;
  readonly mod: number;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const EVICTED_LEAF = '~evicted';
const READ_PAGE = 500;
/** Runs deleted per start transaction: etcd refuses transactions of more than 128 operations by default. */
const TRIM_BATCH = 100;
/** Rounds of a start or finish whose guard lost to a concurrent change (a trim, a finish, an abandon). */
const ATTEMPTS = 5;
/** How long a waiting read barrier lets the watch deliver before it checks etcd again. */
const WATCH_GRACE_MS = 50;

/**
 * The singleton task ledger in etcd: one key per run (`tasks/<task>/<fireTime>`) holding the run, the newest 50 per
 * task, and a `~evicted` key per task with the newest fire time trimmed. The run's fencing token is its key's create
 * revision (etcd's global revision: strictly increasing across runs of every task). Every node keeps a copy of the
 * prefix (a read, then a watch) that runs()/latest() read. A start is one transaction that holds only while this
 * node's election key is still the one of tenure `term`, so a deposed leader never starts a run.
 */
export class EtcdTasks implements TaskRecords {
  private readonly tasks = new Map<string, TaskHistory>();
  /** Every key of the copy, with what it holds: the read barrier compares their number with etcd's. */
  private readonly byKey = new Map<string, { task: string; fireTime: number } | null>();
  private readonly watch: WatchedPrefix;
  private readonly timers: Timers;

  constructor(private readonly d: EtcdTasksDeps) {
    this.timers = d.timers ?? systemTimers;
    this.watch = new WatchedPrefix({
      client: d.client,
      prefix: d.keys.tasksPrefix,
      what: 'task runs',
      sink: { read: () => this.read(), apply: (evs) => this.apply(evs) },
      timers: this.timers,
      logger: d.logger,
      requestTimeoutMs: d.requestTimeoutMs,
    });
  }

  /** The newest etcd revision the copy has caught up to. */
  get revision(): number {
    return this.watch.revision;
  }

  /** Reads the ledger and follows its changes. */
  open(): Promise<void> {
    return this.watch.start();
  }

  close(): Promise<void> {
    return this.watch.stop();
  }

  runs(task?: string): readonly TaskRun[] {
    if (task !== undefined) return this.sorted(this.tasks.get(task));
    return [...this.tasks.values()].flatMap((h) => this.sorted(h)).sort((a, b) => b.fireTime - a.fireTime || b.start - a.start);
  }

  latest(task: string): TaskRun | undefined {
    return this.sorted(this.tasks.get(task))[0];
  }

  async start(task: string, fireTime: number, node: NodeId, term: number): Promise<TaskStartResult> {
    const own = this.d.ownKey();
    if (own === null) throw new NotLeaderException('');
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    const evictedKey = this.evictedKey(task);
    const reads = () => [c.get(own), c.get(runKey), c.get(evictedKey)];
    let seen = this.evictedSeen(task);
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (fireTime <= seen.upTo) {
        // Evicted as far as this copy knows: read (in one transaction) whether it is, or whether leadership went first.
        const res = await c.if(own, 'Create', '==', term).then(...reads()).else(...reads()).options(this.deadline()).commit();
        const verdict = this.refusal(res.responses, term, fireTime);
        if (verdict) return verdict;
        seen = evictedIn(res.responses[2]);
        continue;
      }
      const stored: StoredRun = { task, fireTime, node, term, start: this.d.wallClock(), outcome: 'running' };
      const res = await c
        .if(own, 'Create', '==', term)
        .and(runKey, 'Create', '==', 0)
        .and(evictedKey, 'Mod', '==', seen.mod)
        .then(c.put(runKey).value(encode(stored)), ...this.trimOps(task, fireTime, seen))
        .else(...reads())
        .options(this.deadline())
        .commit();
      if (res.succeeded) {
        const token = revisionOf(res.header.revision);
        await this.settle(token);
        return { started: true, run: Object.freeze({ ...stored, token }) };
      }
      const verdict = this.refusal(res.responses, term, fireTime);
      if (verdict) return verdict;
      // Only the evicted marker moved (a trim), not past this fire time: go again with it.
      seen = evictedIn(res.responses[2]);
    }
    throw new Error(`recording the start of task "${task}" at ${fireTime} lost to concurrent trims ${ATTEMPTS} times`);
  }

  /** Records a fire time that was deliberately not run; nothing when it is recorded (or trimmed) already. */
  async skip(task: string, fireTime: number, node: NodeId): Promise<void> {
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    const evictedKey = this.evictedKey(task);
    const term = await this.leaderTerm();
    let seen = this.evictedSeen(task);
    for (let attempt = 1; attempt <= ATTEMPTS && fireTime > seen.upTo; attempt++) {
      const now = this.d.wallClock();
      const stored: StoredRun = { task, fireTime, node, term, start: now, end: now, outcome: 'skipped' };
      const res = await c
        .if(runKey, 'Create', '==', 0)
        .and(evictedKey, 'Mod', '==', seen.mod)
        .then(c.put(runKey).value(encode(stored)), ...this.trimOps(task, fireTime, seen))
        .else(c.get(runKey), c.get(evictedKey))
        .options(this.deadline())
        .commit();
      if (res.succeeded) return this.settle(revisionOf(res.header.revision));
      if (res.responses[0]?.response_range?.kvs.length) return;
      seen = evictedIn(res.responses[1]);
    }
  }

  /**
   * Records how a run ended: only a run still `running` or `abandoned` (a late report after the next leader gave up
   * on it), and only the run `token` names when given. Anything else is left as it is, as in the embedded ledger.
   */
  async finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string, token?: number): Promise<void> {
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const kv = (await c.get(runKey).options(this.deadline()).exec()).kvs[0];
      const run = kv ? this.decode(kv) : null;
      if (!kv || !run || (run.outcome !== 'running' && run.outcome !== 'abandoned')) return;
      if (token !== undefined && token !== run.token) return;
      const ended: StoredRun = { ...storedOf(run), end: this.d.wallClock(), outcome, ...(error !== undefined ? { error } : {}) };
      const res = await c.if(runKey, 'Mod', '==', kv.mod_revision).then(c.put(runKey).value(encode(ended))).options(this.deadline()).commit();
      if (res.succeeded) return this.settle(revisionOf(res.header.revision));
    }
  }

  /**
   * Right after winning an election, before the tenure counts: every run still `running` from an earlier tenure lost
   * its leader (whose lease, and so election key, is gone) and becomes `abandoned`. Read from etcd rather than the copy,
   * which may lag; each run changes by a transaction on its mod revision, so a late finish is never overwritten.
   */
  async abandonBefore(tenure: number): Promise<void> {
    const { kvs } = await this.readAll();
    const revisions = await Promise.all(kvs.map((kv) => this.abandon(kv, tenure)));
    await this.settle(revisions.reduce((a, b) => Math.max(a, b), 0));
  }

  /** Resolves once the copy has caught up to etcd revision `rev`; rejects after `timeoutMs`. */
  async waitForRevision(rev: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.watch.revision < rev) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the task ledger copy reached etcd revision ${this.watch.revision}, not ${rev}, within ${timeoutMs} ms`);
      // Most revisions change nothing under the prefix, and etcd tells a watch nothing then: ask whether that is so.
      if (!(await this.unchangedSince(left))) await this.nextAdvance(Math.min(left, WATCH_GRACE_MS));
    }
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
      .options({ deadline: Date.now() + Math.min(timeoutMs, this.d.requestTimeoutMs) })
      .exec();
    // With a revision filter etcd counts every key in the range, not just those that pass it.
    if (res.kvs.length > 0 || Number(res.count) !== keys) return false;
    return this.watch.advance(revisionOf(res.header.revision), from);
  }

  private nextAdvance(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.timers.setTimeout(() => (off(), resolve()), ms);
      const off = this.watch.onAdvance(() => (timer.cancel(), resolve()));
    });
  }

  /** After a write: lets the copy show it before returning (as the embedded ledger's applied copy does). */
  private async settle(rev: number): Promise<void> {
    const deadline = Date.now() + this.d.requestTimeoutMs;
    while (this.watch.revision < rev && Date.now() < deadline) await this.nextAdvance(deadline - Date.now());
  }

  /** Marks one run abandoned if it is still running from before `tenure`; returns the revision written (0: none). */
  private async abandon(first: IKeyValue, tenure: number): Promise<number> {
    const c = this.d.client;
    let kv: IKeyValue | undefined = first;
    for (let attempt = 1; kv && attempt <= ATTEMPTS; attempt++) {
      const run = this.decode(kv);
      if (!run || run.outcome !== 'running' || run.term >= tenure) return 0;
      const abandoned: StoredRun = { ...storedOf(run), outcome: 'abandoned' };
      const res = await c
        .if(kv.key, 'Mod', '==', kv.mod_revision)
        .then(c.put(kv.key).value(encode(abandoned)))
        .else(c.get(kv.key))
        .options(this.deadline())
        .commit();
      if (res.succeeded) return revisionOf(res.header.revision);
      kv = res.responses[0]?.response_range?.kvs[0];
    }
    if (kv) throw new Error(`marking the run at ${kv.key.toString()} abandoned lost to concurrent changes ${ATTEMPTS} times`);
    return 0;
  }

  /** Why a start transaction failed, read from its else branch (own key, run key, evicted key); null: only the marker moved. */
  private refusal(responses: readonly IResponseOp[], term: number, fireTime: number): TaskStartResult | null {
    const own = responses[0]?.response_range?.kvs[0];
    if (!own || revisionOf(own.create_revision) !== term) return { started: false, reason: 'not-leader', run: null };
    const existing = responses[1]?.response_range?.kvs[0];
    if (existing) return { started: false, reason: 'duplicate', run: this.decode(existing) };
    if (fireTime <= evictedIn(responses[2]).upTo) return { started: false, reason: 'evicted', run: null };
    return null;
  }

  /**
   * Deletes of the oldest runs once a new one would make more than TASK_RUNS_KEPT, and the marker raised to the
   * newest fire time deleted. Only runs older than the new one go (so every kept run is above the marker); a copy
   * that lags trims less now and catches up on a later start.
   */
  private trimOps(task: string, fireTime: number, seen: Evicted): (DeleteBuilder | PutBuilder)[] {
    const h = this.tasks.get(task);
    const others = h ? [...h.runs.values()].filter((r) => r.fireTime !== fireTime) : [];
    const excess = others.length + 1 - TASK_RUNS_KEPT;
    if (excess <= 0) return [];
    const doomed = others
      .sort((a, b) => a.fireTime - b.fireTime)
      .slice(0, Math.min(excess, TRIM_BATCH))
      .filter((r) => r.fireTime < fireTime);
    if (doomed.length === 0) return [];
    const c = this.d.client;
    const upTo = Math.max(seen.upTo, ...doomed.map((r) => r.fireTime));
    return [...doomed.map((r) => c.delete().key(this.d.keys.taskRun(task, r.fireTime))), c.put(this.evictedKey(task)).value(String(upTo))];
  }

  private evictedSeen(task: string): Evicted {
    const h = this.tasks.get(task);
    return h ? { upTo: h.evictedUpTo, mod: h.evictedMod } : { upTo: -Infinity, mod: 0 };
  }

  /** The term of whoever leads now (the oldest election key), for skipped runs; 0 when nobody does. */
  private async leaderTerm(): Promise<number> {
    const res = await this.d.client.getAll().prefix(this.d.keys.electionPrefix).sort('Create', 'Ascend').limit(1).options(this.deadline()).exec();
    const kv = res.kvs[0];
    return kv ? revisionOf(kv.create_revision) : 0;
  }

  private evictedKey(task: string): string {
    return `${this.d.keys.taskPrefix(task)}${EVICTED_LEAF}`;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.d.requestTimeoutMs };
  }

  /** Every key under the prefix at one revision, in pages. */
  private async readAll(): Promise<{ kvs: IKeyValue[]; at: number }> {
    const all = Range.prefix(this.d.keys.tasksPrefix);
    const kvs: IKeyValue[] = [];
    let start = all.start;
    let at: number | undefined;
    for (;;) {
      let range = this.d.client.getAll().inRange({ start, end: all.end }).limit(READ_PAGE).options(this.deadline());
      if (at !== undefined) range = range.revision(at);
      const res = await range.exec();
      at ??= revisionOf(res.header.revision);
      kvs.push(...res.kvs);
      if (!res.more || res.kvs.length === 0) return { kvs, at };
      start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
  }

  /** The copy, replaced by a fresh read. */
  private async read(): Promise<number> {
    const { kvs, at } = await this.readAll();
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
      const upTo = Number(kv.value.toString());
      h.evictedUpTo = Number.isFinite(upTo) ? upTo : -Infinity;
      h.evictedMod = revisionOf(kv.mod_revision);
      return void this.byKey.set(key, null);
    }
    const run = this.decode(kv);
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
      if (h) {
        h.evictedUpTo = -Infinity;
        h.evictedMod = 0;
      }
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
      h = { runs: new Map(), evictedUpTo: -Infinity, evictedMod: 0, sorted: null };
      this.tasks.set(task, h);
    }
    return h;
  }

  private sorted(h: TaskHistory | undefined): TaskRun[] {
    if (!h) return [];
    h.sorted ??= [...h.runs.values()].sort((a, b) => b.fireTime - a.fireTime || b.start - a.start);
    return h.sorted;
  }

  /** A stored run with its token (the key's create revision); null, with a warning, when the value is not one. */
  private decode(kv: IKeyValue): TaskRun | null {
    let v: Partial<StoredRun> | null;
    try {
      v = packr.unpack(kv.value) as Partial<StoredRun> | null;
    } catch {
      v = null;
    }
    if (!v || typeof v.task !== 'string' || typeof v.fireTime !== 'number' || typeof v.outcome !== 'string') {
      this.d.logger.warn(`etcd key ${kv.key.toString()} does not hold a task run; ignored`);
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
}

function encode(run: StoredRun): Buffer {
  // A copy: the packer reuses its buffer, and the request is serialized later.
  return Buffer.from(packr.pack(run));
}

function storedOf(run: TaskRun): StoredRun {
  const { token: _token, ...stored } = run;
  return stored;
}

/** The evicted marker in a transaction's range response (absent: nothing trimmed). */
function evictedIn(op: IResponseOp | undefined): Evicted {
  const kv = op?.response_range?.kvs[0];
  if (!kv) return { upTo: -Infinity, mod: 0 };
  const upTo = Number(kv.value.toString());
  return { upTo: Number.isFinite(upTo) ? upTo : -Infinity, mod: revisionOf(kv.mod_revision) };
}
