import type { MemberRole } from '../raft/membership.js';
import { parseMember, parseMembers, type MemberAddress, type MemberInput } from '../transport/member-address.js';
import type { TcpNetworkTlsOptions } from '../transport/tcp-network.js';
import type { ClusterLogger } from './logger.js';
import { DEFAULT_EVENT_RETENTION } from './state/event-log-module.js';

/** Options of one cluster node; every one has a default that suits three nodes on one laptop. */
export interface ClusterOptions {
  /** This node's id; must be one of `members` when they are given. Env: CATGA_NODE_ID. */
  readonly nodeId?: string;
  /**
   * The members a new cluster starts with, this one included: `'id=host:port'` or `{ id, address }`. Env: CATGA_MEMBERS
   * (comma-separated). Only the first start reads it; from then on the membership is the one in the log. The first
   * node of a cluster that grows by `join` lists itself alone (and sets `advertise`).
   */
  readonly members?: readonly MemberInput[];
  /**
   * Seeds (`'host:port'` of any members) to join an existing cluster through, instead of `members`: the node asks to be
   * added as a learner, catches up, and is promoted while the cluster has fewer than `targetVoters` voters. Env:
   * CATGA_JOIN (comma-separated).
   */
  readonly join?: readonly string[];
  /** This node's cluster address as others dial it (`'host:port'`); required with `join`. Env: CATGA_ADVERTISE. */
  readonly advertise?: string;
  /** 'learner': a joining node replicates and serves reads but is never promoted to vote. Default 'voter'. Env: CATGA_ROLE. */
  readonly role?: MemberRole;
  /** Voters the leader keeps by promoting caught-up learners: odd, default 3. Env: CATGA_TARGET_VOTERS. */
  readonly targetVoters?: number;
  /** A graceful stop removes this node from the membership (handing leadership over first). Default false. */
  readonly leaveOnShutdown?: boolean;
  /**
   * ms a voter may stay unreachable before the leader removes it: when a caught-up learner can take its place (it is
   * then promoted), or when removing it raises the failures the cluster survives (even voters, or more than
   * targetVoters). Off by default: a voter that is down for maintenance would lose its seat.
   */
  readonly autoRemoveAfter?: number;
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
  /** Address to bind the cluster port to, when it differs from this member's advertised host (containers). Env: CATGA_LISTEN_HOST. */
  readonly listenHost?: string;
  readonly logger?: ClusterLogger;
}

export interface ResolvedClusterOptions {
  readonly nodeId: string;
  /** The bootstrap members: empty when joining by seed. */
  readonly members: readonly MemberAddress[];
  /** Where this node listens and others dial it. */
  readonly self: MemberAddress;
  readonly join: readonly string[];
  /** Whether this node opens a cluster port: several members, joining, or `advertise` given. */
  readonly networked: boolean;
  readonly role: MemberRole;
  readonly targetVoters: number;
  readonly leaveOnShutdown: boolean;
  /** null: off. */
  readonly autoRemoveAfter: number | null;
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
  const list = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const join = o.join ?? list(env.CATGA_JOIN) ?? [];
  if (!Array.isArray(join) || join.some((j) => typeof j !== 'string' || !parseAddress(j))) {
    fail('join', 'a list of seed addresses like ["10.0.0.1:7001", "node-0.svc:7001"]', join);
  }
  const advertiseText = o.advertise ?? env.CATGA_ADVERTISE;
  const advertise = advertiseText === undefined ? undefined : parseAddress(advertiseText);
  if (advertise === null) fail('advertise', 'this node\'s address as "host:port"', advertiseText);
  const givenMembers = o.members ?? list(env.CATGA_MEMBERS);
  if (join.length > 0 && givenMembers !== undefined) {
    fail('join', 'either join (to join an existing cluster) or members (to start a new one), not both');
  }
  if (join.length > 0 && !advertise) fail('advertise', 'this node\'s address "host:port" (CATGA_ADVERTISE): required with join, so the cluster can reach it');
  // A single member opens no port unless it advertises one; the default address is only a label.
  const rawMembers: readonly MemberInput[] =
    givenMembers ?? (join.length > 0 ? [] : [`${nodeId}=${advertiseText ?? '127.0.0.1:7001'}`]);
  if (!Array.isArray(rawMembers) || (rawMembers.length === 0 && join.length === 0)) {
    fail('members', 'a non-empty list like ["node1=10.0.0.1:7001", ...]', rawMembers);
  }
  let members: MemberAddress[] = [];
  try {
    members = parseMembers(rawMembers, 'members');
  } catch (e) {
    throw new ClusterOptionsError(`catga-cluster option ${(e as Error).message}`);
  }
  const listed = members.find((m) => m.id === nodeId);
  if (join.length === 0 && !listed) {
    fail('nodeId', `one of the members' ids (${members.map((m) => m.id).join(', ')})`, nodeId);
  }
  const self: MemberAddress = listed ?? { id: nodeId, ...(advertise as { host: string; port: number }) };
  const role = o.role ?? (env.CATGA_ROLE as MemberRole | undefined) ?? 'voter';
  if (role !== 'voter' && role !== 'learner') fail('role', "'voter' or 'learner'", role);
  const targetVotersRaw = o.targetVoters ?? (env.CATGA_TARGET_VOTERS === undefined ? 3 : Number(env.CATGA_TARGET_VOTERS));
  if (!Number.isInteger(targetVotersRaw) || targetVotersRaw < 1 || targetVotersRaw % 2 === 0) {
    fail('targetVoters', 'an odd whole number >= 1 (3 or 5 is usual)', targetVotersRaw);
  }
  if (o.leaveOnShutdown !== undefined && typeof o.leaveOnShutdown !== 'boolean') fail('leaveOnShutdown', 'true or false', o.leaveOnShutdown);
  if (o.autoRemoveAfter !== undefined && !(typeof o.autoRemoveAfter === 'number' && o.autoRemoveAfter > 0 && Number.isFinite(o.autoRemoveAfter))) {
    fail('autoRemoveAfter', 'ms > 0 (leave it out to keep unreachable voters)', o.autoRemoveAfter);
  }
  const networked = members.length > 1 || join.length > 0 || advertise !== undefined;
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
  if (networked && secret === undefined && !o.tls && o.insecure !== true) {
    fail('secret', 'a shared secret for a multi-member cluster (CATGA_SECRET), or insecure: true to run without one');
  }
  const dataDir = o.dataDir ?? env.CATGA_DATA_DIR ?? `./.catga/${nodeId}`;
  if (typeof dataDir !== 'string' || dataDir === '') fail('dataDir', 'a directory path', dataDir);
  return {
    nodeId,
    members,
    self,
    join,
    networked,
    role,
    targetVoters: targetVotersRaw,
    leaveOnShutdown: o.leaveOnShutdown ?? false,
    autoRemoveAfter: o.autoRemoveAfter ?? null,
    dataDir,
    secret,
    tls: o.tls,
    electionTimeout,
    heartbeatInterval,
    compactionThreshold: positive('compactionThreshold', o.compactionThreshold, 10_000, true),
    eventRetention: wholeNumber('eventRetention', o.eventRetention, DEFAULT_EVENT_RETENTION),
    maxFrameBytes: positive('maxFrameBytes', o.maxFrameBytes, 16 * 1024 * 1024, true),
    requestTimeout: positive('requestTimeout', o.requestTimeout, 5000),
    listenHost: o.listenHost ?? env.CATGA_LISTEN_HOST,
    tickMs,
    electionTick,
    heartbeatTick: HEARTBEAT_TICKS,
  };
}

/** 'host:port' (IPv6 in brackets) as { host, port }, or null. */
export function parseAddress(address: string): { host: string; port: number } | null {
  try {
    const { host, port } = parseMember({ id: 'x', address });
    return { host, port };
  } catch {
    return null;
  }
}
