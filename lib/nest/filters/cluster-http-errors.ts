import {
  ClusterStoppedError,
  ForwardOutcomeUnknownException,
  NoLeaderException,
  NotLeaderException,
  ProposalOutcomeUnknownError,
} from '../../cluster/errors.js';
import { LockTimeoutException } from '../../cluster/lock-errors.js';

/** The cluster errors ClusterExceptionFilter answers; every other error is left to Nest. */
export const CLUSTER_HTTP_ERRORS = [
  NotLeaderException,
  NoLeaderException,
  ProposalOutcomeUnknownError,
  ClusterStoppedError,
  LockTimeoutException,
  ForwardOutcomeUnknownException,
] as const;

export type ClusterHttpError = InstanceType<(typeof CLUSTER_HTTP_ERRORS)[number]>;

/** Stable codes in the JSON body, for clients to branch on instead of messages. */
export type ClusterErrorCode = 'NOT_LEADER' | 'NO_LEADER' | 'OUTCOME_UNKNOWN' | 'CLUSTER_STOPPED' | 'LOCK_TIMEOUT' | 'FORWARD_OUTCOME_UNKNOWN';

export interface ClusterErrorBody {
  readonly statusCode: number;
  readonly code: ClusterErrorCode;
  readonly message: string;
  /** NOT_LEADER only: the leader this node knows of; null when it knows none. */
  readonly leaderId?: string | null;
}

export interface ClusterHttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ClusterErrorBody;
}

/**
 * Seconds a client should wait before retrying a 503: a new leader is in place within two election timeouts (300 ms
 * by default), and Retry-After counts whole seconds.
 */
const RETRY_AFTER_SECONDS = 1;

export function clusterHttpAnswer(e: ClusterHttpError): ClusterHttpAnswer {
  const answer = (status: number, code: ClusterErrorCode, headers: Record<string, string> = {}, extra: Pick<ClusterErrorBody, 'leaderId'> = {}): ClusterHttpAnswer => ({
    status,
    headers,
    body: { statusCode: status, code, message: e.message, ...extra },
  });
  // 421 Misdirected Request: this node cannot run it, the leader it names can.
  if (e instanceof NotLeaderException) return answer(421, 'NOT_LEADER', {}, { leaderId: e.leaderId || null });
  if (e instanceof LockTimeoutException) return answer(409, 'LOCK_TIMEOUT');
  // The leader was asked and its answer lost: a gateway timeout, and it may have run.
  if (e instanceof ForwardOutcomeUnknownException) return answer(504, 'FORWARD_OUTCOME_UNKNOWN');
  // Passing states (an election, a write that timed out, a node shutting down): try again shortly.
  const code = e instanceof NoLeaderException ? 'NO_LEADER' : e instanceof ClusterStoppedError ? 'CLUSTER_STOPPED' : 'OUTCOME_UNKNOWN';
  return answer(503, code, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
}
