import type { NodeId } from '../raft/index.js';
import { ForwardOutcomeUnknownException, NoLeaderException, NotLeaderException } from './errors.js';
import { CallTimeoutError, ConnectionLostError, NotSentError } from '../io/network.js';
import type { ClusterCoordinator } from './cluster-coordinator.js';

/** What a follower sends the leader: a registered name, plain-data payload, and an id the leader dedups on. */
export interface ForwardRequest {
  readonly name: string;
  readonly payload: unknown;
  readonly requestId: string;
}

/**
 * The leader's answer. `ran: false` is the forwarding layer's own statement that the work was not started: only then
 * does the sender try again. `ran: true` carries the work's result or its error, whatever that error is.
 */
export type ForwardReply =
  | { readonly ran: true; readonly ok: true; readonly value: unknown }
  | { readonly ran: true; readonly ok: false; readonly error: unknown }
  | { readonly ran: false; readonly reason: 'not-leader' | 'unknown'; readonly message: string; readonly leaderId: NodeId };

/** One forwarded request being served on the leader. */
export interface ForwardedRun {
  readonly name: string;
  readonly payload: unknown;
  /**
   * Call right before the work starts: throws NotLeaderException (and the reply says "not run") unless this node
   * still holds a valid lease. Later calls do nothing.
   */
  admit(): void;
  /** Declares the request unservable here before anything ran (for example, the name is not registered). */
  refuse(message: string): never;
}

export interface LeaderForwardingOptions {
  /** The request channel between members. */
  readonly channel: string;
  /** Turns a failure of the work into plain data for the reply. */
  readonly encodeError: (e: unknown) => unknown;
  /** Rebuilds that failure on the sender. */
  readonly decodeError: (wire: unknown, leaderId: NodeId) => Error;
  /** Each forward's round trip: `ok`/`error` = the work's result or failure came back, `failed` = no answer or "not run". */
  readonly onRoundTrip?: (name: string, outcome: 'ok' | 'error' | 'failed', seconds: number) => void;
}

/** How long the leader remembers a request id, so a duplicate delivery runs the work once. */
const DEDUPE_WINDOW_MS = 60_000;
const DEDUPE_MAX = 10_000;

/**
 * Runs work on the leader, at most once, from any node. On the node that holds the lease it runs in place; anywhere
 * else it travels to the leader, which runs it if it holds a valid lease at the moment the work starts and answers
 * with the result or the error. The sender retries only on the leader's explicit "not run" (or a request that surely
 * never left): never because of what the work itself threw, and never after a request whose answer was lost
 * (ForwardOutcomeUnknownException). The leader dedups request ids for a minute, so a request delivered twice runs once.
 */
export class LeaderForwarding {
  private seq = 0;
  private readonly recent = new Map<string, { readonly at: number; readonly reply: Promise<ForwardReply> }>();
  private runner: ((run: ForwardedRun) => Promise<unknown>) | null = null;

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly o: LeaderForwardingOptions,
  ) {
    cluster.onRequest(o.channel, (body) => this.serve(body));
  }

  /** How requests that reach this node run here (while it leads). */
  handle(runner: (run: ForwardedRun) => Promise<unknown>): void {
    this.runner = runner;
  }

  /**
   * Runs `name` on the leader: `here()` when this node holds the lease, otherwise the request goes to the leader.
   * Throws the work's own error as rebuilt by `decodeError`; NoLeaderException when no leader ran it within
   * `timeoutMs` (it surely did not run); ForwardOutcomeUnknownException when a request was sent and its answer lost.
   */
  async run(name: string, payload: unknown, here: () => Promise<unknown>, timeoutMs: number): Promise<unknown> {
    const clock = this.cluster.clock;
    const deadline = clock.now() + timeoutMs;
    const request: ForwardRequest = { name, payload, requestId: `${this.cluster.clientId}:${++this.seq}` };
    for (let attempt = 0; ; attempt++) {
      if (this.cluster.hasLease()) return here();
      const left = deadline - clock.now();
      if (left <= 0) throw new NoLeaderException(`no leader ran ${name} within ${timeoutMs} ms`);
      const leader = this.cluster.leaderId;
      if (leader && leader !== this.cluster.nodeId) {
        const reply = await this.send(leader, request, left);
        if (!this.mayRetry(reply)) {
          if (!reply.ran) throw new Error(reply.message);
          if (reply.ok) return reply.value;
          throw this.o.decodeError(reply.error, leader);
        }
      }
      // At least 1 ms: a pause for a sliver of time before the deadline might not move a clock on at all.
      await this.cluster.pauseUntilLeaderElected(Math.max(1, Math.min(5 * 2 ** Math.min(attempt, 5), deadline - clock.now())));
    }
  }

  /**
   * Whether the sender may try again after `reply`: only on the leader's own "not run, not the leader" (the rule the
   * simulator's self-test breaks on purpose). Never on what the work threw, whatever its class.
   */
  protected mayRetry(reply: ForwardReply): boolean {
    return !reply.ran && reply.reason === 'not-leader';
  }

  /** One attempt; a refusal or a request that surely never left comes back as `ran: false`. */
  private async send(leader: NodeId, request: ForwardRequest, timeoutMs: number): Promise<ForwardReply> {
    const sent = performance.now();
    const seconds = () => (performance.now() - sent) / 1000;
    try {
      const reply = (await this.cluster.requestLeader(this.o.channel, request, timeoutMs)).value as ForwardReply;
      this.o.onRoundTrip?.(request.name, reply.ran ? (reply.ok ? 'ok' : 'error') : 'failed', seconds());
      return reply;
    } catch (e) {
      this.o.onRoundTrip?.(request.name, 'failed', seconds());
      if (e instanceof NotSentError) return { ran: false, reason: 'not-leader', message: e.message, leaderId: leader };
      if (e instanceof CallTimeoutError || e instanceof ConnectionLostError) {
        throw new ForwardOutcomeUnknownException(
          `${request.name} was sent to the leader ${leader}, but no answer came back (${e.message}); it may or may not have run`,
        );
      }
      throw e; // the leader's request router refused it before the forwarding layer saw it: nothing ran
    }
  }

  /** On the leader: runs a forwarded request once per request id. */
  private serve(body: unknown): Promise<ForwardReply> {
    const req = body as ForwardRequest;
    if (typeof req !== 'object' || req === null || typeof req.name !== 'string' || typeof req.requestId !== 'string') {
      return Promise.resolve(this.refusal('unknown', 'malformed forward request'));
    }
    this.forgetOld();
    const seen = this.recent.get(req.requestId);
    if (seen) return seen.reply;
    const reply = this.execute(req);
    this.recent.set(req.requestId, { at: this.cluster.clock.now(), reply });
    // A "not run" answer is not remembered: the sender retries with the same id and must get a fresh try.
    void reply.then((r) => !r.ran && this.recent.delete(req.requestId));
    return reply;
  }

  private async execute(req: ForwardRequest): Promise<ForwardReply> {
    const runner = this.runner;
    if (!runner) return this.refusal('unknown', `${this.cluster.nodeId} runs no forwarded work`);
    if (!this.cluster.hasLease()) return this.refusal('not-leader');
    // Set by admit() or refuse(): "admitted" means the work was allowed to start, a refusal that it was not.
    const gate: { admitted: boolean; refusal: ForwardReply | null } = { admitted: false, refusal: null };
    const run: ForwardedRun = {
      name: req.name,
      payload: req.payload,
      admit: () => {
        if (gate.admitted) return;
        if (!gate.refusal && this.cluster.hasLease()) {
          gate.admitted = true;
          return;
        }
        const message = `${this.cluster.nodeId} lost its leader lease before the work started`;
        gate.refusal ??= this.refusal('not-leader', message);
        throw new NotLeaderException(this.cluster.leaderId ?? '', message);
      },
      refuse: (message) => {
        gate.refusal = this.refusal('unknown', message);
        throw new Error(message);
      },
    };
    try {
      const value = await runner(run);
      return gate.refusal ?? { ran: true, ok: true, value };
    } catch (e) {
      return gate.refusal ?? { ran: true, ok: false, error: this.o.encodeError(e) };
    }
  }

  private refusal(reason: 'not-leader' | 'unknown', message?: string): ForwardReply {
    const leaderId = this.cluster.leaderId ?? '';
    return {
      ran: false,
      reason,
      leaderId,
      message: message ?? `${this.cluster.nodeId} does not hold a leader lease${leaderId && leaderId !== this.cluster.nodeId ? `; the leader is ${leaderId}` : ''}`,
    };
  }

  private forgetOld(): void {
    const cutoff = this.cluster.clock.now() - DEDUPE_WINDOW_MS;
    for (const [id, r] of this.recent) {
      if (r.at >= cutoff && this.recent.size <= DEDUPE_MAX) break;
      this.recent.delete(id);
    }
  }
}
