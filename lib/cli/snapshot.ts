import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { decodeReply, encodeRequest, type SnapshotRequest } from '../cluster/rpc.js';
import type { SnapshotReadReply } from '../cluster/snapshot-export.js';
import { ClusterStateMachine } from '../cluster/state/cluster-state-machine.js';
import { decodeMembership, isMembershipEntry, type Member, type Membership } from '../raft/membership.js';
import type { HardState, Snapshot } from '../raft/types.js';
import type { RecoveredState } from '../storage/raft-storage.js';
import { DataDirLockedError, errnoCode } from '../storage/errors.js';
import { FileStorage, LOCK_FILE } from '../storage/file-storage.js';
import { writeWholeFile } from '../storage/disk.js';
import { NodeDisk } from '../storage/node-disk.js';
import { decodeSnapshot } from '../storage/snapshot-file.js';
import { TcpNetwork, type TcpNetworkTlsOptions } from '../transport/tcp-network.js';
import { RefusedError } from './args.js';

/**
 * The operations behind `catga-cluster snapshot save|restore|status`. Every format is the library's own: the node
 * exports its state as a snapshot file (storage/snapshot-file.ts) through SnapshotExporter, restore stores it with
 * FileStorage exactly as a snapshot installed from a leader is stored, and status reads both with the same code.
 */

/** Bytes asked for per chunk (the node caps it at MAX_SNAPSHOT_CHUNK). */
const CHUNK = 4 * 1024 * 1024;
/** Between two "is it ready?" asks while the node encodes the image. */
const POLL_MS = 100;
/** One request's bound; the whole save is bounded by its own timeout. */
const CALL_MS = 10_000;
/** What a fresh file system leaves in the root of a volume; not a node's state. */
const IGNORED_IN_EMPTY_DIR = new Set(['lost+found']);

export interface SaveOptions {
  /** `host:port` cluster addresses of members to ask, in order: the first that answers exports the snapshot. */
  readonly addresses: readonly string[];
  readonly out: string;
  /** The cluster secret (a list during a rotation); undefined only with an insecure cluster. */
  readonly secret: string | readonly string[] | undefined;
  readonly tls?: TcpNetworkTlsOptions;
  readonly timeoutMs: number;
  /** Replace `out` if it exists. */
  readonly force?: boolean;
  /** Progress. */
  readonly log?: (line: string) => void;
  /** Transport warnings (handshake and connection details), for --verbose. */
  readonly debug?: (line: string) => void;
}

export interface SnapshotSummary {
  readonly index: number;
  readonly term: number;
  readonly members: readonly Member[];
  /** Size of the snapshot file in bytes. */
  readonly bytes: number;
}

export interface SaveResult extends SnapshotSummary {
  /** The member that exported it, and the address it was reached at. */
  readonly node: string;
  readonly address: string;
  readonly file: string;
}

/**
 * Asks a running member for a snapshot at a linearizable point (every write acknowledged before the call is in it)
 * over its cluster port, authenticated with the cluster secret like a member, and writes it to `out` (temp file,
 * fsync, rename, directory fsync; mode 0600). Refuses (RefusedError) to replace an existing file unless `force`.
 */
export async function saveSnapshot(o: SaveOptions): Promise<SaveResult> {
  if (o.addresses.length === 0) throw new Error('no address to ask: give a member\'s cluster address (host:port)');
  const out = resolve(o.out);
  if (!o.force && existsSync(out)) throw new RefusedError(`${o.out} exists; remove it or pass --force to replace it`);
  if (!existsSync(dirname(out))) throw new Error(`directory ${dirname(out)} does not exist`);
  const log = o.log ?? (() => undefined);
  const id = `catga-cli-${randomBytes(6).toString('hex')}`;
  const net = new TcpNetwork({
    nodeId: id,
    members: [`${id}=127.0.0.1:1`], // never listens: it only dials
    secret: o.secret,
    tls: o.tls,
    connectTimeoutMs: Math.min(o.timeoutMs, 5000),
    handshakeTimeoutMs: Math.min(o.timeoutMs, 5000),
    logger: { log: () => undefined, warn: (m) => o.debug?.(`transport: ${m}`), debug: () => undefined },
  });
  const deadline = Date.now() + o.timeoutMs;
  const failures: string[] = [];
  try {
    for (const [i, address] of o.addresses.entries()) {
      try {
        const { node, bytes } = await exportFrom(net, address, deadline, log);
        const snap = decodeSnapshot(bytes, `the snapshot from ${node}`);
        if (typeof snap === 'string') throw new Error(`the snapshot from ${node} arrived damaged (${snap}); try again`);
        await writeDurably(out, bytes, o.force === true);
        return { node, address, file: out, ...summary(snap, bytes.length) };
      } catch (e) {
        if (e instanceof RefusedError) throw e;
        failures.push(`${address}: ${describe(e)}${hint(e, o.tls !== undefined)}`);
        if (Date.now() >= deadline) break;
        if (i < o.addresses.length - 1) log(`${address}: ${describe(e)}; trying the next address`);
      }
    }
  } finally {
    await net.close();
  }
  throw new Error(`no snapshot saved:\n  ${failures.join('\n  ')}`);
}

async function exportFrom(net: TcpNetwork, address: string, deadline: number, log: (line: string) => void): Promise<{ node: string; bytes: Buffer }> {
  const left = () => {
    const ms = deadline - Date.now();
    if (ms <= 0) throw new Error('timed out');
    return Math.min(ms, CALL_MS);
  };
  const begun = (await ask(net.callAddress(address, encodeRequest({ kind: 'snapshot', op: 'begin' }), left()))) as { id: string; node: string };
  const { id, node } = begun;
  const call = async (req: SnapshotRequest): Promise<unknown> => ask(net.call(node, encodeRequest(req), left()));
  log(`${node} (${address}) confirms a read point with the leader and takes the snapshot`);
  try {
    let first: SnapshotReadReply;
    for (;;) {
      first = (await call({ kind: 'snapshot', op: 'read', id, offset: 0, length: CHUNK })) as SnapshotReadReply;
      if (first.state === 'ready') break;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, left())));
    }
    const { total, index, term } = first;
    const bytes = Buffer.allocUnsafe(total);
    let at = Buffer.from(first.data).copy(bytes, 0);
    while (at < total) {
      const r = (await call({ kind: 'snapshot', op: 'read', id, offset: at, length: CHUNK })) as SnapshotReadReply;
      if (r.state !== 'ready' || r.index !== index || r.term !== term || r.data.byteLength === 0) throw new Error('the export changed while it was read');
      at += Buffer.from(r.data).copy(bytes, at);
    }
    return { node, bytes };
  } finally {
    await call({ kind: 'snapshot', op: 'end', id }).catch(() => undefined);
  }
}

/** A cluster call's value, or its error as an Error with the remote name in the message. */
async function ask(reply: Promise<Uint8Array>): Promise<unknown> {
  const r = decodeReply(await reply);
  if (r.ok) return r.value;
  if (r.error.message === 'malformed cluster request') {
    throw new Error('this node does not export snapshots (a catga-cluster version before the snapshot CLI?)');
  }
  throw new Error(`${r.error.name}: ${r.error.message}`);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A connection closed before the handshake said anything: what a member does to a connection its TLS refuses. */
function hint(e: unknown, tls: boolean): string {
  if (!/closed by the peer|socket hang up|ECONNRESET/.test(describe(e))) return '';
  return tls
    ? ' (the member may have refused this client certificate: it must be signed by the CA the members trust; see its log)'
    : ' (if the members use TLS, give --tls-ca, --tls-cert and --tls-key)';
}

async function writeDurably(path: string, bytes: Uint8Array, replace: boolean): Promise<void> {
  const disk = new NodeDisk(dirname(path));
  const name = basename(path);
  const tmp = `.${name}.${process.pid}.tmp`;
  const tmpPath = resolve(dirname(path), tmp);
  // The whole replicated state: created for its owner's eyes before a byte is in it, and never left behind.
  await (await fsp.open(tmpPath, 'wx', 0o600)).close();
  try {
    await writeWholeFile(disk, tmp, bytes);
    if (!replace && existsSync(path)) throw new RefusedError(`${path} appeared meanwhile; not replaced`);
    await disk.rename(tmp, name);
  } catch (e) {
    await fsp.rm(tmpPath, { force: true });
    throw e;
  }
  await disk.syncDir('.');
}

async function readCopy(dir: string): Promise<RecoveredState> {
  let lock;
  try {
    lock = await new NodeDisk(dir).lock(LOCK_FILE);
  } catch (e) {
    if (e instanceof DataDirLockedError) {
      throw new RefusedError(`${e.message}\nA running node's state can be saved with: catga-cluster snapshot save <file> --address <its cluster address>`);
    }
    throw e;
  }
  const copy = await fsp.mkdtemp(join(tmpdir(), 'catga-status-'));
  try {
    for (const sub of ['wal', 'snap']) {
      if (existsSync(join(dir, sub))) await fsp.cp(join(dir, sub), join(copy, sub), { recursive: true });
    }
    await lock.release();
    lock = null;
    const storage = new FileStorage(new NodeDisk(copy));
    try {
      return await storage.open();
    } finally {
      await storage.close().catch(() => undefined);
    }
  } finally {
    await lock?.release();
    await fsp.rm(copy, { recursive: true, force: true });
  }
}

/** Reads and checks a snapshot file. */
export async function readSnapshotFile(file: string): Promise<{ snapshot: Snapshot; bytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new Error(`${file} does not exist`);
    if (errnoCode(e) === 'EISDIR') throw new Error(`${file} is a directory, not a snapshot file`);
    throw e;
  }
  const snap = decodeSnapshot(bytes, file); // UnsupportedFormatError for a file that is not a snapshot
  if (typeof snap === 'string') throw new Error(`${file} is damaged (${snap}); it cannot be used`);
  return { snapshot: snap, bytes: bytes.length };
}

function summary(s: Snapshot, bytes: number): SnapshotSummary {
  return { index: s.meta.index, term: s.meta.term, members: s.meta.membership.members, bytes };
}

export interface RestoreOptions {
  readonly file: string;
  readonly dataDir: string;
  /** When given, the node that will use the data dir must be a member of the snapshot's configuration. */
  readonly nodeId?: string;
}

export interface RestoreResult extends SnapshotSummary {
  readonly dataDir: string;
}

/**
 * Writes a snapshot file into an empty data dir (missing, or holding only lost+found) so that a node started on it
 * begins from the snapshot: stored by FileStorage as a snapshot from a leader is (snap/ file, WAL marker) with the hard
 * state term = the snapshot's term, no vote, commit = its index. Refuses a non-empty dir (RefusedError).
 */
export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  const { snapshot, bytes } = await readSnapshotFile(o.file);
  const { membership } = snapshot.meta;
  if (o.nodeId !== undefined && !membership.members.some((m) => m.id === o.nodeId)) {
    throw new RefusedError(
      `${o.nodeId} is not a member of the snapshot's configuration (${membership.members.map((m) => m.id).join(', ') || 'none'}); ` +
        'restore it into the data dirs of those members, started under those ids',
    );
  }
  const dir = resolve(o.dataDir);
  const present = await entriesOf(dir);
  if (present === 'file') throw new Error(`${o.dataDir} is a file, not a directory`);
  if (present.length > 0) {
    throw new RefusedError(
      `${o.dataDir} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', …' : ''}). A restore replaces a ` +
        "node's whole state: stop the node and move its data dir aside (keep it until the restored cluster works), then " +
        'restore into an empty directory',
    );
  }
  const storage = new FileStorage(new NodeDisk(dir));
  let recovered;
  try {
    recovered = await storage.open();
  } catch (e) {
    if (e instanceof DataDirLockedError) throw new RefusedError(e.message);
    throw e;
  }
  try {
    if (recovered.snapshot !== null || recovered.entries.length > 0 || recovered.hardState.term !== 0) {
      throw new RefusedError(`${o.dataDir} gained a node's state while it was being restored; nothing was written`);
    }
    // The node's current term must be at least the last log term (here the snapshot's); no vote in it yet. The
    // snapshot's index is committed by definition.
    const hardState: HardState = { term: snapshot.meta.term, vote: '', commit: snapshot.meta.index };
    await storage.persist({ snapshot, entries: [], hardState });
  } finally {
    await storage.close();
  }
  return { dataDir: dir, ...summary(snapshot, bytes) };
}

/** Names in `dir` that make it non-empty; [] for a missing dir; 'file' when it is not a directory. */
async function entriesOf(dir: string): Promise<string[] | 'file'> {
  try {
    return (await fsp.readdir(dir)).filter((n) => !IGNORED_IN_EMPTY_DIR.has(n)).sort();
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    if (errnoCode(e) === 'ENOTDIR') return 'file';
    throw e;
  }
}

/** What the replicated state holds: counted by restoring it into a state machine (cheap next to reading the file). */
export interface StateCounts {
  readonly keys: number;
  readonly events: number;
}

export type StatusReport =
  | ({ readonly kind: 'file'; readonly path: string } & SnapshotSummary & StateCounts)
  | { readonly kind: 'empty'; readonly path: string }
  | {
      readonly kind: 'dataDir';
      readonly path: string;
      /** Bytes of the WAL segments and snapshot files. */
      readonly bytes: number;
      readonly hardState: HardState;
      readonly snapshot: { readonly index: number; readonly term: number } | null;
      /** The entries after the snapshot; first/last null when there are none. */
      readonly log: { readonly first: number | null; readonly last: number; readonly entries: number };
      /** The configuration in force: the newest in the log, else the snapshot's. */
      readonly members: readonly Member[];
      readonly membershipFrom: string;
      /** The state at the commit index this node last wrote down (it may have applied more before it stopped). */
      readonly state: StateCounts & { readonly atIndex: number };
      /** The last cluster event this node's application was given (events.cursor), if recorded. */
      readonly eventCursor: number | null;
    };

/** What a snapshot file or a stopped node's data dir holds. A data dir in use by a running node is refused. */
export async function snapshotStatus(path: string): Promise<StatusReport> {
  let stat;
  try {
    stat = await fsp.stat(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new Error(`${path} does not exist`);
    throw e;
  }
  if (stat.isFile()) {
    const { snapshot, bytes } = await readSnapshotFile(path);
    return { kind: 'file', path: resolve(path), ...summary(snapshot, bytes), ...countState(snapshot, []) };
  }
  const dir = resolve(path);
  const names = await fsp.readdir(dir);
  if (!names.includes('wal') && !names.includes('snap')) {
    const other = names.filter((n) => !IGNORED_IN_EMPTY_DIR.has(n));
    if (other.length === 0) return { kind: 'empty', path: dir };
    throw new Error(`${path} is neither a snapshot file nor a node's data dir (no wal/ or snap/ in it)`);
  }
  // Read as the node would read it, with its recovery rules, but from a copy: recovery repairs what it finds (a torn
  // tail, a missing marker), and status must change nothing. The dir's lock is held while copying, so never while a
  // node runs on it.
  const rec = await readCopy(dir);
  const { hardState, snapshot, entries } = rec;
  let membership: Membership = snapshot?.meta.membership ?? { members: [] };
  let membershipFrom = snapshot ? `snapshot at ${snapshot.meta.index}` : 'none yet (an empty log starts from the node\'s options)';
  for (const e of entries) {
    if (!isMembershipEntry(e.data)) continue;
    membership = decodeMembership(e.data);
    membershipFrom = `log entry ${e.index}${e.index > hardState.commit ? ' (not known to be committed)' : ''}`;
  }
  const atIndex = Math.max(hardState.commit, snapshot?.meta.index ?? 0);
  return {
    kind: 'dataDir',
    path: dir,
    bytes: (await dirBytes(dir, 'wal')) + (await dirBytes(dir, 'snap')),
    hardState,
    snapshot: snapshot ? { index: snapshot.meta.index, term: snapshot.meta.term } : null,
    log: { first: entries[0]?.index ?? null, last: entries.at(-1)?.index ?? snapshot?.meta.index ?? 0, entries: entries.length },
    members: membership.members,
    membershipFrom,
    state: { atIndex, ...countState(snapshot, entries.filter((e) => e.index <= atIndex)) },
    eventCursor: await readCursor(dir),
  };
}

function countState(snapshot: Snapshot | null, entries: readonly { term: number; index: number; data: Uint8Array }[]): StateCounts {
  const sm = new ClusterStateMachine();
  if (snapshot) sm.restore(snapshot.data);
  for (const e of entries) sm.apply(e);
  return { keys: sm.kv.size, events: sm.events.rows().length };
}

async function dirBytes(root: string, sub: string): Promise<number> {
  let total = 0;
  for (const name of await fsp.readdir(resolve(root, sub)).catch(() => [] as string[])) {
    const s = await fsp.stat(resolve(root, sub, name)).catch(() => null);
    if (s?.isFile()) total += s.size;
  }
  return total;
}

async function readCursor(dir: string): Promise<number | null> {
  const text = await fsp.readFile(resolve(dir, 'events.cursor'), 'utf8').catch(() => null);
  const n = text === null ? Number.NaN : Number(text.trim());
  return Number.isSafeInteger(n) ? n : null;
}
