import type { DeleteBuilder, Etcd3, IKeyValue, IResponseOp, PutBuilder } from 'etcd3';
import type { NodeId } from '../../raft/index.js';
import { systemClock, systemTimers, type Clock, type Timers } from '../../io/clock.js';
import type { TaskRecords } from '../backend.js';
import { NotLeaderException } from '../errors.js';
import type { ClusterLogger } from '../logger.js';
import { TASK_RUNS_KEPT, type TaskRun, type TaskStartResult } from '../state/task-ledger-module.js';
import { callOptions } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import {
  decodeRun,
  encodeRun,
  evictedKey,
  evictedOf,
  isEvictedMarker,
  ledgerError,
  readLedgerKeys,
  TaskMirror,
  type Evicted,
  type StoredRun,
} from './task-mirror.js';

export interface EtcdTasksDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly requestTimeoutMs: number;
  readonly logger: ClusterLogger;
  /** Wall-clock ms for a run's start and end. */
  readonly wallClock: () => number;
  /** This node's election key while it leads (null otherwise): a start is a transaction guarded by `Create(ownKey) == term`. */
  readonly ownKey: () => string | null;
  /** Who leads as this node sees it ('' when unknown): the hint of the NotLeaderException a start throws elsewhere. */
  readonly leaderId?: () => string;
  /** Monotonic time for the copy's deadlines; the system clock when omitted. */
  readonly clock?: Clock;
  /** For the watch's retry back-off; system timers when omitted. */
  readonly timers?: Timers;
}

/** Runs deleted per start transaction: etcd refuses transactions of more than 128 operations by default. */
const TRIM_BATCH = 100;
/** Rounds of a start or finish whose guard lost to a concurrent change (a trim, a finish, an abandon). */
const ATTEMPTS = 5;

/**
 * The singleton task ledger in etcd: one key per run (`tasks/<task>/<fireTime>`) holding the run, the newest 50 per
 * task, and a `~evicted` key per task with the newest fire time trimmed. The run's fencing token is its key's create
 * revision (etcd's global revision: strictly increasing across runs of every task). A start is one transaction that
 * holds only while this node's election key is still the one of tenure `term`, so a deposed leader never starts a run.
 * Reads go to this node's copy (TaskMirror); every write waits until the copy shows it. etcd failures surface as
 * NoLeaderException (surely not applied) or ProposalOutcomeUnknownError (may have applied), never as etcd3's errors.
 */
export class EtcdTasks implements TaskRecords {
  private readonly copy: TaskMirror;

  constructor(private readonly d: EtcdTasksDeps) {
    this.copy = new TaskMirror({
      client: d.client,
      keys: d.keys,
      requestTimeoutMs: d.requestTimeoutMs,
      logger: d.logger,
      clock: d.clock ?? systemClock,
      timers: d.timers ?? systemTimers,
    });
  }

  /** The newest etcd revision the copy has caught up to. */
  get revision(): number {
    return this.copy.revision;
  }

  /** Reads the ledger and follows its changes. */
  open(): Promise<void> {
    return this.copy.open();
  }

  close(): Promise<void> {
    return this.copy.close();
  }

  runs(task?: string): readonly TaskRun[] {
    return this.copy.runs(task);
  }

  latest(task: string): TaskRun | undefined {
    return this.copy.latest(task);
  }

  /** Resolves once the copy has caught up to etcd revision `rev`; rejects after `timeoutMs`. */
  waitForRevision(rev: number, timeoutMs: number): Promise<void> {
    return this.copy.waitForRevision(rev, timeoutMs);
  }

  async start(task: string, fireTime: number, node: NodeId, term: number): Promise<TaskStartResult> {
    const own = this.d.ownKey();
    if (own === null) {
      // A leader id naming this node is stale (its key is gone already): no hint beats a wrong one.
      const leader = this.d.leaderId?.() ?? '';
      throw new NotLeaderException(leader === node ? '' : leader);
    }
    try {
      return await this.fencedStart(own, task, fireTime, node, term);
    } catch (e) {
      throw ledgerError(e, `recording the start of task "${task}" at ${fireTime}`);
    }
  }

  /** Records a fire time that was deliberately not run; nothing when it is recorded (or trimmed) already. */
  async skip(task: string, fireTime: number, node: NodeId): Promise<void> {
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    const marker = evictedKey(this.d.keys, task);
    try {
      const term = await this.leaderTerm();
      let seen = this.copy.evicted(task);
      for (let attempt = 1; attempt <= ATTEMPTS && fireTime > seen.upTo; attempt++) {
        const now = this.d.wallClock();
        const stored: StoredRun = { task, fireTime, node, term, start: now, end: now, outcome: 'skipped' };
        const res = await c
          .if(runKey, 'Create', '==', 0)
          .and(marker, 'Mod', '==', seen.mod)
          .then(c.put(runKey).value(encodeRun(stored)), ...this.trimOps(task, fireTime, seen))
          .else(c.get(runKey), c.get(marker))
          .options(this.callOptions())
          .commit();
        if (res.succeeded) return await this.copy.settle(revisionOf(res.header.revision));
        if (res.responses[0]?.response_range?.kvs.length) return;
        seen = evictedOf(res.responses[1]?.response_range?.kvs[0]);
      }
    } catch (e) {
      throw ledgerError(e, `recording task "${task}" at ${fireTime} as skipped`);
    }
  }

  /**
   * Records how a run ended: only a run still `running` or `abandoned` (a late report after the next leader gave up
   * on it), and only the run `token` names when given. Anything else is left as it is, as in the embedded ledger.
   */
  async finish(task: string, fireTime: number, outcome: 'ok' | 'error', error?: string, token?: number): Promise<void> {
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    try {
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        const kv = (await c.get(runKey).options(this.callOptions()).exec()).kvs[0];
        const run = kv ? decodeRun(kv, this.d.logger) : null;
        if (!kv || !run || (run.outcome !== 'running' && run.outcome !== 'abandoned')) return;
        if (token !== undefined && token !== run.token) return;
        const ended: StoredRun = { ...storedOf(run), end: this.d.wallClock(), outcome, ...(error !== undefined ? { error } : {}) };
        const res = await c.if(runKey, 'Mod', '==', kv.mod_revision).then(c.put(runKey).value(encodeRun(ended))).options(this.callOptions()).commit();
        if (res.succeeded) return await this.copy.settle(revisionOf(res.header.revision));
      }
    } catch (e) {
      throw ledgerError(e, `recording the end of task "${task}" at ${fireTime}`);
    }
  }

  /**
   * Right after winning an election, before the tenure counts: every run still `running` from an earlier tenure lost
   * its leader (whose lease, and so election key, is gone) and becomes `abandoned`. Read from etcd rather than the copy,
   * which may lag; each run changes by a transaction on its mod revision, so a late finish is never overwritten.
   */
  async abandonBefore(tenure: number): Promise<void> {
    try {
      const { kvs } = await readLedgerKeys(this.d.client, this.d.keys, this.d.requestTimeoutMs);
      // The markers hold a fire time, not a run: decoding them would warn once per trimmed task at every election.
      const runs = kvs.filter((kv) => !isEvictedMarker(kv.key));
      const revisions = await Promise.all(runs.map((kv) => this.abandon(kv, tenure)));
      await this.copy.settle(revisions.reduce((a, b) => Math.max(a, b), 0));
    } catch (e) {
      throw ledgerError(e, `marking the runs of tenures before ${tenure} abandoned`);
    }
  }

  private async fencedStart(own: string, task: string, fireTime: number, node: NodeId, term: number): Promise<TaskStartResult> {
    const c = this.d.client;
    const runKey = this.d.keys.taskRun(task, fireTime);
    const marker = evictedKey(this.d.keys, task);
    const reads = () => [c.get(own), c.get(runKey), c.get(marker)];
    let seen = this.copy.evicted(task);
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (fireTime <= seen.upTo) {
        // Evicted as far as this copy knows: read (in one transaction) whether it is, or whether leadership went first.
        const res = await c.if(own, 'Create', '==', term).then(...reads()).else(...reads()).options(this.callOptions()).commit();
        const verdict = this.refusal(res.responses, term, fireTime);
        if (verdict) return verdict;
        seen = evictedOf(res.responses[2]?.response_range?.kvs[0]);
        continue;
      }
      const stored: StoredRun = { task, fireTime, node, term, start: this.d.wallClock(), outcome: 'running' };
      const res = await c
        .if(own, 'Create', '==', term)
        .and(runKey, 'Create', '==', 0)
        .and(marker, 'Mod', '==', seen.mod)
        .then(c.put(runKey).value(encodeRun(stored)), ...this.trimOps(task, fireTime, seen))
        .else(...reads())
        .options(this.callOptions())
        .commit();
      if (res.succeeded) {
        const token = revisionOf(res.header.revision);
        await this.copy.settle(token);
        return { started: true, run: Object.freeze({ ...stored, token }) };
      }
      const verdict = this.refusal(res.responses, term, fireTime);
      if (verdict) return verdict;
      // Only the evicted marker moved (a trim), not past this fire time: go again with it.
      seen = evictedOf(res.responses[2]?.response_range?.kvs[0]);
    }
    throw new Error(`recording the start of task "${task}" at ${fireTime} lost to concurrent trims ${ATTEMPTS} times`);
  }

  /** Marks one run abandoned if it is still running from before `tenure`; returns the revision written (0: none). */
  private async abandon(first: IKeyValue, tenure: number): Promise<number> {
    const c = this.d.client;
    let kv: IKeyValue | undefined = first;
    for (let attempt = 1; kv && attempt <= ATTEMPTS; attempt++) {
      const run = decodeRun(kv, this.d.logger);
      if (!run || run.outcome !== 'running' || run.term >= tenure) return 0;
      const abandoned: StoredRun = { ...storedOf(run), outcome: 'abandoned' };
      const res = await c
        .if(kv.key, 'Mod', '==', kv.mod_revision)
        .then(c.put(kv.key).value(encodeRun(abandoned)))
        .else(c.get(kv.key))
        .options(this.callOptions())
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
    if (existing) return { started: false, reason: 'duplicate', run: decodeRun(existing, this.d.logger) };
    if (fireTime <= evictedOf(responses[2]?.response_range?.kvs[0]).upTo) return { started: false, reason: 'evicted', run: null };
    return null;
  }

  /**
   * Deletes of the oldest runs once a new one would make more than TASK_RUNS_KEPT, and the marker raised to the
   * newest fire time deleted. Only runs older than the new one go (so every kept run is above the marker); a copy
   * that lags trims less now and catches up on a later start.
   */
  private trimOps(task: string, fireTime: number, seen: Evicted): (DeleteBuilder | PutBuilder)[] {
    const others = this.copy.runs(task).filter((r) => r.fireTime !== fireTime);
    const excess = others.length + 1 - TASK_RUNS_KEPT;
    if (excess <= 0) return [];
    const doomed = others
      .sort((a, b) => a.fireTime - b.fireTime)
      .slice(0, Math.min(excess, TRIM_BATCH))
      .filter((r) => r.fireTime < fireTime);
    if (doomed.length === 0) return [];
    const c = this.d.client;
    const upTo = Math.max(seen.upTo, ...doomed.map((r) => r.fireTime));
    return [...doomed.map((r) => c.delete().key(this.d.keys.taskRun(task, r.fireTime))), c.put(evictedKey(this.d.keys, task)).value(String(upTo))];
  }

  /** The term of whoever leads now (the oldest election key), for skipped runs; 0 when nobody does. */
  private async leaderTerm(): Promise<number> {
    const res = await this.d.client.getAll().prefix(this.d.keys.electionPrefix).sort('Create', 'Ascend').limit(1).options(this.callOptions()).exec();
    const kv = res.kvs[0];
    return kv ? revisionOf(kv.create_revision) : 0;
  }

  private callOptions(): { deadline: Date } {
    return callOptions(this.d.requestTimeoutMs);
  }
}

function storedOf(run: TaskRun): StoredRun {
  const { token: _token, ...stored } = run;
  return stored;
}
