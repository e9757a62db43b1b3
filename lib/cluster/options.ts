import { parseMembers, type MemberAddress, type MemberInput } from '../transport/member-address.js';
import type { TcpNetworkTlsOptions } from '../transport/tcp-network.js';
import type { ClusterLogger } from './logger.js';
import { DEFAULT_EVENT_RETENTION } from './state/event-log-module.js';

/** Options of one cluster node; every one has a default that suits three nodes on one laptop. */
export interface ClusterOptions {
  /** This node's id; must be one of `members`. Env: CATGA_NODE_ID. */
  readonly nodeId?: string;
  /** Every member, this one included: `'id=host:port'` or `{ id, address }`. Env: CATGA_MEMBERS (comma-separated). */
  readonly members?: readonly MemberInput[];
  /** Where the log and snapshots live; one dataDir per node. Env: CATGA_DATA_DIR. */
  readonly dataDir?: string;
  /** Shared secret that members prove to each other (HMAC-SHA256). Required with more than one member. Env: CATGA_SECRET. */
  readonly secret?: string;
  /** Run a multi-member cluster without a secret (anyone who reaches the port can join the conversation). */
  readonly insecure?: boolean;
  /** Mutual TLS for cluster connections (node:tls options: key, cert, ca). */
  readonly tls?: TcpNetworkTlsOptions;
  /** ms without a leader before a follower starts an election; randomized up to twice this. Default 150. */
  readonly electionTimeout?: number;
  /** ms between leader heartbeats. Default 50. */
  readonly heartbeatInterval?: number;
  /** Entries applied past the last snapshot before the next snapshot and log compaction. Default 10000. */
  readonly compactionThreshold?: number;
  /**
   * Newest cluster events every node keeps in the replicated state, so a node that restarts or catches up by snapshot
   * still delivers them; one that falls further behind gets a ClusterEventsMissed notice. Default 10000. Use the same
   * value on every member.
   */
  readonly eventRetention?: number;
  /** Largest cluster frame in bytes. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** ms a write, forwarded command or linearizable read may take before it fails. Default 5000. */
  readonly requestTimeout?: number;
  /** Address to bind the cluster port to, when it differs from this member's advertised host (containers). */
  readonly listenHost?: string;
  readonly logger?: ClusterLogger;
}

export interface ResolvedClusterOptions {
  readonly nodeId: string;
  readonly members: readonly MemberAddress[];
  readonly dataDir: string;
  readonly secret: string | undefined;
  readonly tls: TcpNetworkTlsOptions | undefined;
  readonly electionTimeout: number;
  readonly heartbeatInterval: number;
  readonly compactionThreshold: number;
  readonly eventRetention: number;
  readonly maxFrameBytes: number;
  readonly requestTimeout: number;
  readonly listenHost: string | undefined;
  /** Derived: the core's clock. Five ticks per heartbeat keeps the lease precise to a fifth of a heartbeat. */
  readonly tickMs: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
}

export class ClusterOptionsError extends Error {
  override name = 'ClusterOptionsError';
}

const HEARTBEAT_TICKS = 5;

/**
 * Validates options (filling gaps from the environment) and fails with the option's name and what is expected. With
 * no nodeId and no members anywhere, the result is a single-member cluster that leads at once (development).
 */
export function resolveClusterOptions(o: ClusterOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedClusterOptions {
  const fail = (name: string, expected: string, got?: unknown): never => {
    const shown = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
    throw new ClusterOptionsError(`catga-cluster option ${name}: expected ${expected}${shown}`);
  };
  const nodeId = o.nodeId ?? env.CATGA_NODE_ID ?? 'node1';
  if (typeof nodeId !== 'string' || nodeId === '' || nodeId.includes('=') || nodeId.trim() !== nodeId) {
    fail('nodeId', 'a non-empty id without "=" or surrounding spaces', nodeId);
  }
  const rawMembers: readonly MemberInput[] =
    o.members ??
    (env.CATGA_MEMBERS
      ? env.CATGA_MEMBERS.split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [`${nodeId}=127.0.0.1:7001`]); // a single member opens no port; the address is only a label
  if (!Array.isArray(rawMembers) || rawMembers.length === 0) fail('members', 'a non-empty list like ["node1=10.0.0.1:7001", ...]', rawMembers);
  let members: MemberAddress[] = [];
  try {
    members = parseMembers(rawMembers, 'members');
  } catch (e) {
    throw new ClusterOptionsError(`catga-cluster option ${(e as Error).message}`);
  }
  if (!members.some((m) => m.id === nodeId)) {
    fail('nodeId', `one of the members' ids (${members.map((m) => m.id).join(', ')})`, nodeId);
  }
  const positive = (name: string, v: number | undefined, dflt: number, integer = false): number => {
    const x = v ?? dflt;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) {
      fail(name, integer ? 'a whole number > 0' : 'a number > 0', x);
    }
    return x;
  };
  const wholeNumber = (name: string, v: number | undefined, dflt: number): number => {
    const x = v ?? dflt;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) fail(name, 'a whole number >= 0', x);
    return x;
  };
  const heartbeatInterval = positive('heartbeatInterval', o.heartbeatInterval, 50);
  const electionTimeout = positive('electionTimeout', o.electionTimeout, 150);
  if (heartbeatInterval >= electionTimeout) {
    fail('heartbeatInterval', `less than electionTimeout (${electionTimeout} ms); a third of it or less is usual`, heartbeatInterval);
  }
  const tickMs = heartbeatInterval / HEARTBEAT_TICKS;
  const electionTick = Math.round(electionTimeout / tickMs);
  if (electionTick < 2 * HEARTBEAT_TICKS) {
    fail('electionTimeout', `at least twice heartbeatInterval (${heartbeatInterval} ms) so a leader lease fits`, electionTimeout);
  }
  const secret = o.secret ?? env.CATGA_SECRET;
  if (secret !== undefined && (typeof secret !== 'string' || secret.length < 8)) {
    fail('secret', 'a string of at least 8 characters (use a long random one)', '<hidden>');
  }
  if (members.length > 1 && secret === undefined && !o.tls && o.insecure !== true) {
    fail('secret', 'a shared secret for a multi-member cluster (CATGA_SECRET), or insecure: true to run without one');
  }
  const dataDir = o.dataDir ?? env.CATGA_DATA_DIR ?? `./.catga/${nodeId}`;
  if (typeof dataDir !== 'string' || dataDir === '') fail('dataDir', 'a directory path', dataDir);
  return {
    nodeId,
    members,
    dataDir,
    secret,
    tls: o.tls,
    electionTimeout,
    heartbeatInterval,
    compactionThreshold: positive('compactionThreshold', o.compactionThreshold, 10_000, true),
    eventRetention: wholeNumber('eventRetention', o.eventRetention, DEFAULT_EVENT_RETENTION),
    maxFrameBytes: positive('maxFrameBytes', o.maxFrameBytes, 16 * 1024 * 1024, true),
    requestTimeout: positive('requestTimeout', o.requestTimeout, 5000),
    listenHost: o.listenHost,
    tickMs,
    electionTick,
    heartbeatTick: HEARTBEAT_TICKS,
  };
}
