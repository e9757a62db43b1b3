import type { Entry, NodeId, SnapshotMeta } from './types.js';

export enum MessageType {
  PreVote = 1,
  PreVoteResp,
  Vote,
  VoteResp,
  App,
  AppResp,
  Heartbeat,
  HeartbeatResp,
  Snap,
  ReadIndex,
  ReadIndexResp,
  TimeoutNow,
}

/** One piece of a snapshot; the follower restores once `offset + data.length === total`. */
export interface SnapshotChunk {
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly total: number;
  readonly data: Uint8Array;
}

/**
 * A flat message like etcd's raftpb.Message: every kind uses a subset of the fields, which keeps the codec and the
 * simulator's tracing simple.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** App: term of the entry at `index`. AppResp reject: term at `rejectHint`. Votes: term of the last entry. */
  readonly logTerm: number;
  /** App: index before `entries`. AppResp: last index matched (or rejected). Votes: last index. ReadIndexResp: read index. */
  readonly index: number;
  readonly commit: number;
  readonly entries: readonly Entry[];
  readonly reject: boolean;
  readonly rejectHint: number;
  /**
   * ReadIndex/ReadIndexResp: the requester's context. Heartbeat/HeartbeatResp: the leader's key of a read round.
   * Vote: CAMPAIGN_TRANSFER marks a campaign the leader asked for.
   */
  readonly context: string;
  /**
   * The leader's tick when it sent App/Heartbeat/Snap, echoed by the responses: what the leader lease is measured on.
   * TimeoutNow: the leader's tick when it sent it; a transfer Vote carries the stamp of the TimeoutNow it obeys.
   */
  readonly stamp: number;
  /**
   * App/Heartbeat/Snap: the leader's transfer fence. A TimeoutNow this leader stamped before it belongs to a transfer
   * the leader abandoned, and voters that know the fence refuse the campaign it would start.
   */
  readonly fence: number;
  readonly snapshot: SnapshotChunk | null;
}

export const CAMPAIGN_TRANSFER = 'transfer';

const EMPTY: readonly Entry[] = Object.freeze([]);

/**
 * Every field named in one literal, in the order the transport's decoder uses: all messages then share one shape,
 * which keeps the code that reads them fast and allocates nothing but the message (a spread over defaults did not).
 */
export function message(fields: Pick<Message, 'type' | 'from' | 'to' | 'term'> & Partial<Message>): Message {
  return {
    type: fields.type,
    from: fields.from,
    to: fields.to,
    term: fields.term,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    commit: fields.commit ?? 0,
    entries: fields.entries ?? EMPTY,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? '',
    stamp: fields.stamp ?? 0,
    fence: fields.fence ?? 0,
    snapshot: fields.snapshot ?? null,
  };
}

export function isResponse(type: MessageType): boolean {
  return (
    type === MessageType.PreVoteResp ||
    type === MessageType.VoteResp ||
    type === MessageType.AppResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.ReadIndexResp
  );
}
