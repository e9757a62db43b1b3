import { ClusterStoppedError, NoLeaderException, NotLeaderException, ProposalDroppedError, ProposalOutcomeUnknownError } from './errors.js';
import { type Clock, type Timers } from '../io/clock.js';
import { CallTimeoutError, ConnectionLostError, NotSentError, RemoteCallError, type Network } from '../io/network.js';
import { pauseUntilLeaderElected } from './leader-wait.js';
import type { RaftRuntime } from './raft-runtime.js';
import { decodeReply, encodeRequest, type WireError } from './rpc.js';
import { encodePayload } from './state/entry-codec.js';
import type { KvCommand, KvEntry, KvWriteResult } from './state/kv-module.js';
import type { SessionId } from './state/session-table.js';
import { ApplyError, type ClusterStateMachine } from './state/cluster-state-machine.js';
import type { ClusterStore } from './backend.js';

export type ReadConsistency = 'local' | 'linearizable';

export interface StoreEntry<T = unknown> {
  readonly value: T;
  /** Writes since the key was created: 1, 2, … */
  readonly version: number;
  /** Log index of the last write. */
  readonly revision: number;
}

export interface WriteResult {
  readonly version: number;
  readonly revision: number;
}

export interface CasResult extends WriteResult {
  readonly ok: boolean;
}

export interface ProposeOptions {
  /**
   * Propose on this node only, never forwarded: NotLeaderException when it does not lead. For entries whose meaning
   * depends on who proposed them (a task run's start, which only the leader of that term may make).
   */
  readonly localOnly?: boolean;
}

/** How a node submits commands to the replicated log, whether it leads or not. */
export interface Proposer {
  propose(module: string, command: unknown, options?: ProposeOptions): Promise<unknown>;
}

export interface ProposerDeps {
  readonly runtime: RaftRuntime;
  readonly network: Network;
  readonly clock: Clock;
  readonly timers: Timers;
  /** Wall-clock ms written into entries (lock TTLs are measured on it). */
  readonly wallClock: () => number;
  /** Unique per process start: a restarted process must not reuse the previous one's sequence numbers. */
  readonly clientId: string;
  readonly requestTimeoutMs: number;
}

/** Shared rather than a new object per write. */
const NO_OPTIONS: ProposeOptions = Object.freeze({});

/** For LogProposer.attempts: no attempt was made yet. */
const NOT_TRIED: unique symbol = Symbol('not tried');

/**
 * Submits commands: on the leader straight into the log, elsewhere forwarded to the leader. Every command carries
 * (clientId, seq), so retrying after an unknown outcome (lost connection, leader change, timeout) applies it once;
 * that makes every retry below safe, and the caller sees one result or, at the deadline, an error.
 */
export class LogProposer implements Proposer {
  private seq = 0;

  constructor(private readonly d: ProposerDeps) {}

  propose(module: string, command: unknown, options: ProposeOptions = NO_OPTIONS): Promise<unknown> {
    const session = { client: this.d.clientId, seq: ++this.seq };
    const deadline = this.d.clock.now() + this.d.requestTimeoutMs;
    const runtime = this.d.runtime;
    if (!runtime.isRunning || !runtime.leadership.isLeader) return this.attempts(module, command, options, session, deadline, NOT_TRIED);
    // The usual case, a leader taking the write at once, is tried without the retry loop's async function: its
    // state, promise and awaits cost some hundreds of bytes per write, a large share of what a write allocates.
    let first: Promise<unknown>;
    try {
      first = this.proposeHere(module, command, session, deadline);
    } catch (e) {
      return Promise.reject(e);
    }
    return first.then(unwrap, (e: unknown) => this.attempts(module, command, options, session, deadline, e));
  }

  /** Into this node's log, as its leader; the entry gets only what is left of the deadline. */
  private proposeHere(module: string, command: unknown, session: SessionId, deadline: number): Promise<unknown> {
    const left = Math.max(1, deadline - this.d.clock.now());
    return this.d.runtime.propose(encodePayload({ module, command, time: this.d.wallClock(), session }), left);
  }

  /** The attempts until `deadline`; `failure` is how a first attempt made by propose() failed, or NOT_TRIED. */
  private async attempts(module: string, command: unknown, options: ProposeOptions, session: SessionId, deadline: number, failure: unknown): Promise<unknown> {
    let last: Error | null = null; // built only when needed: an exception's stack trace is costly on every write
    /** An earlier attempt may have reached the log: the caller must not be told it surely did not. */
    let uncertain = false;
    // A failure is recorded even past the deadline: it decides what the caller is told.
    for (let attempt = 0; failure !== NOT_TRIED || this.d.clock.now() < deadline; attempt++) {
      if (failure === NOT_TRIED) {
        if (!this.d.runtime.isRunning) {
          throw uncertain ? new ProposalOutcomeUnknownError('this node stopped while the write was in flight; it may still apply once') : new ClusterStoppedError();
        }
        const { isLeader, leaderId } = this.d.runtime.leadership;
        if (!isLeader && options.localOnly) {
          throw uncertain ? new ProposalOutcomeUnknownError(`this node stopped leading while the write was in flight (${last?.message})`) : new NotLeaderException(leaderId);
        }
        // Every attempt gets only what is left of the deadline: the leader gives up on the entry by then as well.
        const left = Math.max(1, deadline - this.d.clock.now());
        try {
          if (isLeader) return unwrap(await this.proposeHere(module, command, session, deadline));
          if (leaderId) {
            const request = encodeRequest({ kind: 'propose', module, command, session, timeoutMs: left });
            const reply = decodeReply(await this.d.network.call(leaderId, request, left));
            if (reply.ok) return reply.value;
            throw fromWire(reply.error);
          }
        } catch (e) {
          failure = e;
        }
      }
      if (failure !== NOT_TRIED) {
        if (!retryable(failure)) throw failure;
        last = failure as Error;
        if (!surelyNotApplied(failure)) uncertain = true;
        failure = NOT_TRIED;
      }
      // At least 1 ms: a pause for a sliver of time before the deadline might not move a clock on at all.
      await pauseUntilLeaderElected(this.d.runtime, this.d.timers, Math.max(1, Math.min(5 * 2 ** Math.min(attempt, 6), 100, deadline - this.d.clock.now())));
    }
    throw !uncertain
      ? new NoLeaderException(`no leader took the write within ${this.d.requestTimeoutMs} ms`)
      : new ProposalOutcomeUnknownError(`the write was not confirmed within ${this.d.requestTimeoutMs} ms (${last?.message}); it may still apply once`);
  }
}

/** Retry is safe for all of these because the session makes a second apply return the first result. */
function retryable(e: unknown): boolean {
  return (
    e instanceof NotLeaderException ||
    e instanceof NoLeaderException ||
    e instanceof ProposalDroppedError ||
    e instanceof ProposalOutcomeUnknownError ||
    e instanceof NotSentError ||
    e instanceof CallTimeoutError ||
    e instanceof ConnectionLostError ||
    e instanceof RemoteCallError
  );
}

/** Errors that prove this attempt never entered the log. */
function surelyNotApplied(e: unknown): boolean {
  return e instanceof NotLeaderException || e instanceof NoLeaderException || e instanceof ProposalDroppedError || e instanceof NotSentError;
}

function unwrap(result: unknown): unknown {
  if (result instanceof ApplyError) throw new Error(result.message);
  return result;
}

export function fromWire(e: WireError): Error {
  switch (e.name) {
    case 'NotLeaderException':
      return new NotLeaderException(e.leaderId ?? '', e.message);
    case 'NoLeaderException':
      return new NoLeaderException(e.message);
    case 'ProposalDroppedError':
      return new ProposalDroppedError(e.message);
    case 'ProposalOutcomeUnknownError':
      return new ProposalOutcomeUnknownError(e.message);
    default: {
      const err = new Error(e.message);
      err.name = e.name;
      return err;
    }
  }
}

/** A deep copy of a replicated value (plain data, as decoded from the log); primitives are returned as they are. */
export function copyOf<T>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

function putResult(r: KvWriteResult): WriteResult {
  return { version: r.version, revision: r.revision };
}

function deleteResult(r: KvWriteResult): WriteResult {
  return { version: 0, revision: r.revision };
}

/** The key-value store kept in the replicated log: `cluster.store` on the embedded backend. */
export class LogStore implements ClusterStore {
  constructor(
    private readonly proposer: Proposer,
    private readonly runtime: RaftRuntime,
    private readonly sm: ClusterStateMachine,
    private readonly requestTimeoutMs: number,
  ) {}

  async get<T = unknown>(key: string, opts: { consistency?: ReadConsistency } = {}): Promise<StoreEntry<T> | undefined> {
    if (opts.consistency === 'linearizable') await this.runtime.readBarrier(this.requestTimeoutMs);
    const e: KvEntry | undefined = this.sm.kv.get(key);
    // A copy: a caller changing what it read must not change this replica (and its next snapshot) alone.
    return e ? { value: copyOf(e.value) as T, version: e.version, revision: e.revision } : undefined;
  }

  // put and delete chain a .then rather than await: one async function less per write (see LogProposer.propose).
  put(key: string, value: unknown): Promise<WriteResult> {
    return this.write({ op: 'put', key, value }).then(putResult);
  }

  delete(key: string): Promise<WriteResult> {
    return this.write({ op: 'delete', key }).then(deleteResult);
  }

  /** Writes `value` only if the key's version is `expectedVersion` (0: only if absent). */
  async cas(key: string, expectedVersion: number, value: unknown): Promise<CasResult> {
    if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
      throw new TypeError(`cas expectedVersion must be a whole number >= 0 (0 = absent), got ${expectedVersion}`);
    }
    return this.write({ op: 'cas', key, expectedVersion, value });
  }

  private write(cmd: KvCommand): Promise<KvWriteResult> {
    if (typeof cmd.key !== 'string' || cmd.key.length === 0) return Promise.reject(new TypeError('store keys are non-empty strings'));
    return this.proposer.propose('kv', cmd) as Promise<KvWriteResult>;
  }
}

