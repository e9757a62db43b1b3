import type { MemberRole } from '../raft/membership.js';
import { parseMember, parseMembers, type MemberAddress, type MemberInput } from '../transport/member-address.js';
import type { TcpNetworkTlsOptions } from '../transport/tcp-network.js';
import type { ClusterLogger } from './logger.js';
import { unknownOptionProblem } from './option-keys.js';
import { envList, envNumber, envText, opt, type OptionSpec, type OptionsOf } from './option-schema.js';
import { DEFAULT_EVENT_RETENTION } from './state/event-log-module.js';

/** The etcd cluster a node coordinates through instead of the embedded Raft group. */
export interface EtcdBackendOptions {
  readonly type: 'etcd';
  /** etcd client URLs, like `['http://10.0.0.5:2379', …]`; a bare `host:port` means http. */
  readonly hosts: readonly string[];
  readonly auth?: { readonly username: string; readonly password: string };
  /** PEM file paths: `ca` to verify etcd, `cert` and `key` for client certificates. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** Every key this cluster writes is under it. Default `catga/`. */
  readonly prefix?: string;
}

export type BackendOptions = { readonly type: 'embedded' } | EtcdBackendOptions;

export interface ResolvedEtcdBackend {
  readonly type: 'etcd';
  readonly hosts: readonly string[];
  readonly auth?: { readonly username: string; readonly password: string };
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** Ends with '/'. */
  readonly prefix: string;
}

const isStringRecord = (v: unknown, keys: readonly string[]): boolean =>
  typeof v === 'object' && v !== null && Object.entries(v).every(([k, x]) => keys.includes(k) && typeof x === 'string' && x !== '');

const isBackend = (v: unknown): boolean => {
  if (typeof v !== 'object' || v === null) return false;
  const b = v as Record<string, unknown>;
  if (b.type === 'embedded') return Object.keys(b).length === 1;
  return (
    b.type === 'etcd' &&
    Object.keys(b).every((k) => ['type', 'hosts', 'auth', 'tls', 'prefix'].includes(k)) &&
    Array.isArray(b.hosts) &&
    b.hosts.length > 0 &&
    b.hosts.every((h) => typeof h === 'string' && etcdUrl(h) !== null) &&
    (b.auth === undefined || (isStringRecord(b.auth, ['username', 'password']) && Object.keys(b.auth as object).length === 2)) &&
    (b.tls === undefined || isStringRecord(b.tls, ['ca', 'cert', 'key'])) &&
    (b.prefix === undefined || (typeof b.prefix === 'string' && b.prefix !== ''))
  );
};

/** An etcd client URL as given, or `http://` + a bare host:port; null when it is neither. */
function etcdUrl(h: string): string | null {
  const url = /^[a-z]+:\/\//i.test(h) ? h : `http://${h}`;
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && u.pathname === '/' ? url : null;
  } catch {
    return null;
  }
}

const isAddress = (v: unknown): boolean => typeof v === 'string' && parseAddress(v) !== null;
const isSecret = (v: unknown): boolean => typeof v === 'string' && v.length >= 8;
const isLogger = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && ['log', 'warn', 'error'].every((f) => typeof (v as Record<string, unknown>)[f] === 'function');

/**
 * The options of one cluster node, with the checks of their shapes and the CATGA_* variables that can give them;
 * `ClusterOptions` is derived from it. Every option has a default that suits three nodes on one laptop.
 */
export const CLUSTER_OPTIONS = {
  /** This node's id; must be one of `members` when they are given. Env: CATGA_NODE_ID. */
  nodeId: opt.custom<string>(
    'a non-empty id without "=" or surrounding spaces',
    (v) => typeof v === 'string' && v !== '' && !v.includes('=') && v.trim() === v,
    { fromEnv: envText('CATGA_NODE_ID') },
  ),
  /**
   * The members a new cluster starts with, this one included: `'id=host:port'` or `{ id, address }`. Env: CATGA_MEMBERS
   * (comma-separated). Only the first start reads it; from then on the membership is the one in the log. The first
   * node of a cluster that grows by `join` lists itself alone (and sets `advertise`).
   */
  members: opt.custom<readonly MemberInput[]>('a non-empty list like ["node1=10.0.0.1:7001", ...]', (v) => Array.isArray(v), {
    fromEnv: envList('CATGA_MEMBERS'),
  }),
  /**
   * Seeds (`'host:port'` of any members) to join an existing cluster through, instead of `members`: the node asks to be
   * added as a learner, catches up, and is promoted while the cluster has fewer than `targetVoters` voters. Env:
   * CATGA_JOIN (comma-separated).
   */
  join: opt.custom<readonly string[]>('a list of seed addresses like ["10.0.0.1:7001", "node-0.svc:7001"]', (v) => Array.isArray(v) && v.every(isAddress), {
    fromEnv: envList('CATGA_JOIN'),
  }),
  /** This node's cluster address as others dial it (`'host:port'`); required with `join`. Env: CATGA_ADVERTISE. */
  advertise: opt.custom<string>('this node\'s address as "host:port"', isAddress, { fromEnv: envText('CATGA_ADVERTISE') }),
  /** 'learner': a joining node replicates and serves reads but is never promoted to vote. Default 'voter'. Env: CATGA_ROLE. */
  role: opt.oneOf<MemberRole>(['voter', 'learner'], { fromEnv: envText('CATGA_ROLE') }),
  /** Voters the leader keeps by promoting caught-up learners: odd, default 3. Env: CATGA_TARGET_VOTERS. */
  targetVoters: opt.custom<number>('an odd whole number >= 1 (3 or 5 is usual)', (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) % 2 === 1, {
    fromEnv: envNumber('CATGA_TARGET_VOTERS'),
  }),
  /** A graceful stop removes this node from the membership (handing leadership over first). Default false. */
  leaveOnShutdown: opt.boolean(),
  /**
   * ms a voter may stay unreachable before the leader removes it: when a caught-up learner can take its place (it is
   * then promoted), or when removing it raises the failures the cluster survives (even voters, or more than
   * targetVoters). Off by default: a voter that is down for maintenance would lose its seat.
   */
  autoRemoveAfter: opt.custom<number>('ms > 0 (leave it out to keep unreachable voters)', (v) => typeof v === 'number' && Number.isFinite(v) && v > 0),
  /** Where the log and snapshots live; one dataDir per node. Env: CATGA_DATA_DIR. */
  dataDir: opt.custom<string>('a directory path', (v) => typeof v === 'string' && v !== '', { fromEnv: envText('CATGA_DATA_DIR') }),
  /**
   * Shared secret that members prove to each other (HMAC-SHA256). Required with more than one member. Env: CATGA_SECRET.
   * A list rotates it without downtime: a node proves and requires the first on every connection it accepts, and
   * accepts every one from a node it dials (docs/deploy.md, "Rotating the secret"). Env: CATGA_SECRET_ACCEPTED adds
   * one more accepted secret after CATGA_SECRET.
   */
  secret: opt.custom<string | readonly string[]>(
    'a string of at least 8 characters (use a long random one), or a non-empty list of them',
    (v) => isSecret(v) || (Array.isArray(v) && v.length > 0 && v.every(isSecret)),
    {
      secret: true,
      fromEnv: {
        names: ['CATGA_SECRET', 'CATGA_SECRET_ACCEPTED'],
        read: (env) => (env.CATGA_SECRET !== undefined && env.CATGA_SECRET_ACCEPTED ? [env.CATGA_SECRET, env.CATGA_SECRET_ACCEPTED] : env.CATGA_SECRET),
      },
    },
  ),
  /**
   * The consensus engine: the embedded Raft group (default), or an etcd cluster the team already runs —
   * `{ type: 'etcd', hosts: ['http://10.0.0.5:2379'], auth?, tls?, prefix? }`. Env: CATGA_ETCD_HOSTS (comma-separated)
   * and CATGA_ETCD_PREFIX. On etcd, nodes register themselves by lease: members only tells this node its own address.
   */
  backend: opt.custom<BackendOptions>(
    "{ type: 'embedded' } or { type: 'etcd', hosts: ['http://host:2379', ...], auth?: { username, password }, tls?: { ca?, cert?, key? }, prefix? }",
    isBackend,
    {
      redact: (v) =>
        typeof v === 'object' && v !== null && 'auth' in v && typeof v.auth === 'object' && v.auth !== null
          ? { ...v, auth: { ...v.auth, ...('password' in v.auth ? { password: '<hidden>' } : {}) } }
          : v,
      fromEnv: {
        names: ['CATGA_ETCD_HOSTS', 'CATGA_ETCD_PREFIX'],
        read: (env) => {
          const hosts = env.CATGA_ETCD_HOSTS?.split(',').map((h) => h.trim()).filter(Boolean);
          if (!hosts || hosts.length === 0) return undefined;
          return { type: 'etcd', hosts, ...(env.CATGA_ETCD_PREFIX ? { prefix: env.CATGA_ETCD_PREFIX } : {}) };
        },
      },
    },
  ),
  /** Run a multi-member cluster without a secret (anyone who reaches the port can join the conversation). */
  insecure: opt.boolean(),
  /** Mutual TLS for cluster connections (node:tls options: key, cert, ca). */
  tls: opt.custom<TcpNetworkTlsOptions>('node:tls options such as { key, cert, ca }', (v) => typeof v === 'object' && v !== null),
  /** ms without a leader before a follower starts an election; randomized up to twice this. Default 150. */
  electionTimeout: opt.positive(),
  /** ms between leader heartbeats. Default 50. */
  heartbeatInterval: opt.positive(),
  /**
   * Entries applied past the last snapshot before the next snapshot and log compaction. Default 10000. Once images
   * pass 1 MiB, a snapshot also waits until those entries hold as many bytes as the last image, so a large state is
   * rewritten less often.
   */
  compactionThreshold: opt.positive(true),
  /**
   * Newest cluster events every node keeps in the replicated state, so a node that restarts or catches up by snapshot
   * still delivers them; one that falls further behind gets a ClusterEventsMissed notice. Default 10000. Use the same
   * value on every member.
   */
  eventRetention: opt.wholeOrZero(),
  /** Largest cluster frame in bytes. Default 16 MiB. */
  maxFrameBytes: opt.positive(true),
  /** ms a write, forwarded command or linearizable read may take before it fails. Default 5000. */
  requestTimeout: opt.positive(),
  /** Address to bind the cluster port to, when it differs from this member's advertised host (containers). Env: CATGA_LISTEN_HOST. */
  listenHost: opt.custom<string>('a host name or IP address', (v) => typeof v === 'string' && v !== '', { fromEnv: envText('CATGA_LISTEN_HOST') }),
  /**
   * 'memory': no files, so nothing survives the process — for unit tests (see CatgaClusterModule.forTest()). Only a
   * single member without a cluster port may use it: a member that forgot its log and votes could elect two leaders.
   * Default 'file' (in dataDir).
   */
  storage: opt.oneOf(['file', 'memory']),
  /**
   * Read CATGA_* environment variables for the options not given here (options given here win). Default: only when no
   * cluster option is given at all (`forRoot()`), so a test or an app that configures the cluster in code is never
   * changed by a stray variable.
   */
  fromEnv: opt.boolean(),
  /** Where the node's own log lines go (Nest's Logger in the module). Default: the console. */
  logger: opt.custom<ClusterLogger>('an object with log, warn and error methods', isLogger),
} satisfies Record<string, OptionSpec<unknown>>;

export type ClusterOptions = OptionsOf<typeof CLUSTER_OPTIONS>;

export const CLUSTER_OPTION_KEYS = Object.keys(CLUSTER_OPTIONS) as readonly (keyof ClusterOptions)[];

/** The cluster's own options out of a larger object (the module's options). */
export function clusterOptionsOf(o: ClusterOptions): ClusterOptions {
  return Object.fromEntries(CLUSTER_OPTION_KEYS.filter((k) => k in o).map((k) => [k, o[k]])) as ClusterOptions;
}

export interface ResolvedClusterOptions {
  readonly nodeId: string;
  readonly backend: { readonly type: 'embedded' } | ResolvedEtcdBackend;
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
  /** One secret as given, or a list of several (the current one first). */
  readonly secret: string | readonly string[] | undefined;
  readonly tls: TcpNetworkTlsOptions | undefined;
  readonly electionTimeout: number;
  readonly heartbeatInterval: number;
  readonly compactionThreshold: number;
  readonly eventRetention: number;
  readonly maxFrameBytes: number;
  readonly requestTimeout: number;
  readonly listenHost: string | undefined;
  readonly storage: 'file' | 'memory';
  /** CATGA_* variables that are set but were not read (options came in code, without fromEnv). */
  readonly ignoredEnv: readonly string[];
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
 * Validates options (filling gaps from the environment when it is read: see `fromEnv`) and fails with the option's
 * name and what is expected. `valid` lists the keys accepted (the module adds its own). With no nodeId and no members
 * anywhere, the result is a single-member cluster that leads at once (development).
 */
export function resolveClusterOptions(
  o: ClusterOptions = {},
  processEnv: NodeJS.ProcessEnv = process.env,
  valid: readonly string[] = CLUSTER_OPTION_KEYS,
): ResolvedClusterOptions {
  const fail = (name: string, expected: string, got?: unknown): never => {
    const shown = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
    throw new ClusterOptionsError(`catga-cluster option ${name}: expected ${expected}${shown}`);
  };
  const unknown = unknownOptionProblem(o, valid);
  if (unknown) throw new ClusterOptionsError(unknown);
  // Checked ahead of the others, by its own spec: it decides where they come from.
  if (o.fromEnv !== undefined && !CLUSTER_OPTIONS.fromEnv.is(o.fromEnv)) fail('fromEnv', CLUSTER_OPTIONS.fromEnv.expected, o.fromEnv);
  const given = CLUSTER_OPTION_KEYS.some((k) => k !== 'logger' && k !== 'fromEnv' && o[k] !== undefined);
  const readEnv = o.fromEnv ?? !given;
  // Each option from the code, else (when read) from its variable, checked against its shape.
  const v: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CLUSTER_OPTIONS) as [string, OptionSpec<unknown>][]) {
    const given = (o as Record<string, unknown>)[key];
    const value = given ?? (readEnv ? spec.fromEnv?.read(processEnv) : undefined);
    if (value === undefined) continue;
    const from = given === undefined ? ` (from ${spec.fromEnv!.names.filter((n) => processEnv[n] !== undefined).join(' and ')})` : '';
    if (!spec.is(value)) fail(`${key}${from}`, spec.expected, spec.secret ? '<hidden>' : spec.redact ? spec.redact(value) : value);
    v[key] = value;
  }
  // Variables set but passed over because options came in code without fromEnv: worth a word, not an error.
  const ignoredEnv =
    readEnv || o.fromEnv === false
      ? []
      : Object.values(CLUSTER_OPTIONS as Record<string, OptionSpec<unknown>>).flatMap((spec) => spec.fromEnv?.names.filter((n) => processEnv[n] !== undefined) ?? []);
  const c = v as ClusterOptions;
  const nodeId = c.nodeId ?? 'node1';
  const join = c.join ?? [];
  const advertiseText = c.advertise;
  const advertise = advertiseText === undefined ? undefined : parseAddress(advertiseText)!;
  if (readEnv && c.backend === undefined && processEnv.CATGA_ETCD_PREFIX !== undefined) {
    fail('backend (from CATGA_ETCD_PREFIX)', 'CATGA_ETCD_HOSTS too: a prefix alone does not choose the etcd backend');
  }
  const backend = resolveBackend(c.backend);
  if (backend.type === 'etcd') {
    // Options of the embedded group's log and membership: on etcd they would be silently ignored, so they are refused.
    for (const key of ['join', 'role', 'targetVoters', 'autoRemoveAfter', 'leaveOnShutdown', 'compactionThreshold', 'storage', 'heartbeatInterval'] as const) {
      if (c[key] !== undefined) {
        fail(key, `no ${key} with backend etcd: it belongs to the embedded Raft group (on etcd, nodes come and go by their session lease and etcd keeps the data)`, c[key]);
      }
    }
    if (!advertise && !c.members?.length) {
      fail('advertise', 'this node\'s address "host:port" (CATGA_ADVERTISE): required with backend etcd, so other nodes can forward to it when it leads');
    }
  }
  const givenMembers = c.members;
  if (join.length > 0 && givenMembers !== undefined) {
    fail('join', 'either join (to join an existing cluster) or members (to start a new one), not both');
  }
  if (join.length > 0 && !advertise) fail('advertise', 'this node\'s address "host:port" (CATGA_ADVERTISE): required with join, so the cluster can reach it');
  // A single member opens no port unless it advertises one; the default address is only a label.
  const rawMembers: readonly MemberInput[] =
    givenMembers ?? (join.length > 0 ? [] : [`${nodeId}=${advertiseText ?? '127.0.0.1:7001'}`]);
  if (rawMembers.length === 0 && join.length === 0) {
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
  const role = c.role ?? 'voter';
  // On etcd every node takes forwarded requests: any of them may lead.
  const networked = backend.type === 'etcd' || members.length > 1 || join.length > 0 || advertise !== undefined;
  const heartbeatInterval = c.heartbeatInterval ?? 50;
  const electionTimeout = c.electionTimeout ?? 150;
  if (heartbeatInterval >= electionTimeout) {
    fail('heartbeatInterval', `less than electionTimeout (${electionTimeout} ms); a third of it or less is usual`, heartbeatInterval);
  }
  const tickMs = heartbeatInterval / HEARTBEAT_TICKS;
  const electionTick = Math.round(electionTimeout / tickMs);
  if (electionTick < 2 * HEARTBEAT_TICKS) {
    fail('electionTimeout', `at least twice heartbeatInterval (${heartbeatInterval} ms) so a leader lease fits`, electionTimeout);
  }
  const secret = c.secret;
  if (networked && secret === undefined && !c.tls && c.insecure !== true) {
    fail('secret', 'a shared secret for a multi-member cluster (CATGA_SECRET), or insecure: true to run without one');
  }
  const dataDir = c.dataDir ?? `./.catga/${nodeId}`;
  const storage = c.storage ?? 'file';
  if (storage === 'memory' && networked) {
    fail('storage', "'file' for a node with a cluster port: 'memory' is for a single member (tests), since a member that forgets its log on restart could vote twice", storage);
  }
  return {
    nodeId,
    backend,
    members,
    self,
    join,
    networked,
    role,
    targetVoters: c.targetVoters ?? 3,
    leaveOnShutdown: c.leaveOnShutdown ?? false,
    autoRemoveAfter: c.autoRemoveAfter ?? null,
    dataDir,
    secret,
    tls: c.tls,
    electionTimeout,
    heartbeatInterval,
    compactionThreshold: c.compactionThreshold ?? 10_000,
    eventRetention: c.eventRetention ?? DEFAULT_EVENT_RETENTION,
    maxFrameBytes: c.maxFrameBytes ?? 16 * 1024 * 1024,
    requestTimeout: c.requestTimeout ?? 5000,
    listenHost: c.listenHost,
    storage,
    ignoredEnv,
    tickMs,
    electionTick,
    heartbeatTick: HEARTBEAT_TICKS,
  };
}

function resolveBackend(b: BackendOptions | undefined): ResolvedClusterOptions['backend'] {
  if (!b || b.type === 'embedded') return { type: 'embedded' };
  const prefix = b.prefix ?? 'catga/';
  return {
    type: 'etcd',
    hosts: b.hosts.map((h) => etcdUrl(h)!),
    ...(b.auth ? { auth: b.auth } : {}),
    ...(b.tls ? { tls: b.tls } : {}),
    prefix: prefix.endsWith('/') ? prefix : `${prefix}/`,
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
