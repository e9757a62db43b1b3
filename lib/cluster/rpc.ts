import type { MemberRole, NodeId } from '../raft/index.js';
import { pack, unpack } from './msgpack.js';
import type { SessionId } from './state/session-table.js';

/** Requests one member sends another over the cluster connection. */
export type ClusterRequest =
  /** `timeoutMs`: how long the caller still waits; the leader gives up on the write by then too. */
  | { readonly kind: 'propose'; readonly module: string; readonly command: unknown; readonly session: SessionId; readonly timeoutMs?: number }
  | { readonly kind: 'transfer'; readonly to: NodeId | null }
  /** A membership change for the leader (see ClusterMembership), or 'ping' to a node about to be added. */
  | MemberRequest
  /** A request for a handler registered by a higher layer (the Nest integration forwards commands this way). */
  | { readonly kind: 'app'; readonly channel: string; readonly body: unknown }
  /** A consistent snapshot of the replicated state, fetched in chunks (`catga-cluster snapshot save`; SnapshotExporter). */
  | SnapshotRequest;

/**
 * `begin` starts an export and answers `{ id, node }` (the exporting node's id); `read` answers `{ state: 'pending' }` until the image is ready, then
 * `{ state: 'ready', index, term, total, data }` with `data` the bytes of the snapshot file at `offset`; `end` frees it.
 */
export type SnapshotRequest =
  | { readonly kind: 'snapshot'; readonly op: 'begin' }
  | { readonly kind: 'snapshot'; readonly op: 'read'; readonly id: string; readonly offset: number; readonly length: number }
  | { readonly kind: 'snapshot'; readonly op: 'end'; readonly id: string };

export type MemberOp = 'add' | 'remove' | 'promote' | 'demote' | 'join' | 'ping';

export interface MemberRequest {
  readonly kind: 'member';
  readonly op: MemberOp;
  readonly id: NodeId;
  readonly address?: string;
  readonly role?: MemberRole;
  readonly pinned?: boolean;
}

/** An error carried back to the caller: enough to rethrow something meaningful there. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly leaderId?: NodeId;
  readonly code?: string;
}

export type ClusterReply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: WireError };

export function encodeRequest(r: ClusterRequest): Uint8Array {
  return pack(r);
}

export function decodeRequest(data: Uint8Array): ClusterRequest {
  const r = unpack(data) as ClusterRequest;
  if (!r || (r.kind !== 'propose' && r.kind !== 'transfer' && r.kind !== 'app' && r.kind !== 'member' && r.kind !== 'snapshot')) {
    throw new Error('malformed cluster request');
  }
  return r;
}

export function encodeReply(r: ClusterReply): Uint8Array {
  return pack(r);
}

export function decodeReply(data: Uint8Array): ClusterReply {
  const r = unpack(data) as ClusterReply;
  if (!r || typeof r.ok !== 'boolean') throw new Error('malformed cluster reply');
  return r;
}

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const extra = e as Error & { leaderId?: unknown; code?: unknown };
    return {
      name: e.name,
      message: e.message,
      ...(typeof extra.leaderId === 'string' ? { leaderId: extra.leaderId } : {}),
      ...(typeof extra.code === 'string' ? { code: extra.code } : {}),
    };
  }
  return { name: 'Error', message: String(e) };
}
