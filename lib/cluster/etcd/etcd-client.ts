/**
 * The etcd3 client as the etcd backend uses it: no blind retries (a re-sent write could apply twice), a deadline on
 * every call, a startup probe that turns the usual misconfigurations into messages that say what to fix, and the
 * mapping of etcd3's errors onto the library's.
 */
import { readFileSync } from 'node:fs';
import { ExponentialBackoff, noop } from 'cockatiel';
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  type IOptions,
} from 'etcd3';
import { NoLeaderException, ProposalOutcomeUnknownError } from '../errors.js';

export interface EtcdConnectOptions {
  /** 'http://127.0.0.1:2379' or 'https://…' */
  readonly hosts: readonly string[];
  readonly auth?: { readonly username: string; readonly password: string };
  /** PEM file paths. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly requestTimeoutMs: number;
}

/** Per-call options with a deadline (grpc takes wall-clock dates). */
export function callOptions(timeoutMs: number): { deadline: Date } {
  return { deadline: new Date(Date.now() + timeoutMs) };
}

function clientOptions(o: EtcdConnectOptions, hosts: readonly string[]): IOptions {
  return {
    hosts: [...hosts],
    auth: o.auth && { username: o.auth.username, password: o.auth.password, callOptions: () => callOptions(o.requestTimeoutMs) },
    credentials: o.tls && (o.tls.ca || o.tls.cert || o.tls.key) ? readTls(o.tls) : undefined,
    // Pings find a watch stream on a member that stopped answering (etcd refuses pings more often than every 5 s).
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
    // noop policies: a call goes to one host once; the callers decide what may be retried.
    faultHandling: {
      host: () => noop,
      global: noop,
      // etcd3 types this as a backoff but calls next() on it first: a backoff state is a factory of the next one.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 5_000 }).next(),
    },
  };
}

function readTls(tls: NonNullable<EtcdConnectOptions['tls']>): NonNullable<IOptions['credentials']> {
  // grpc refuses a lone certificate or key too, but without naming the options that set them.
  if (Boolean(tls.cert) !== Boolean(tls.key)) {
    throw new Error(`etcd ${tls.cert ? 'backend.tls.cert is set without backend.tls.key' : 'backend.tls.key is set without backend.tls.cert'}: a client certificate needs both (PEM file paths)`);
  }
  const read = (what: 'ca' | 'cert' | 'key', path: string | undefined): Buffer | undefined => {
    if (!path) return undefined;
    let pem: Buffer;
    try {
      pem = readFileSync(path);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      throw new Error(`etcd backend.tls.${what}: cannot read ${path} (${why}): set it to ${TLS_FILE[what]}`);
    }
    // A DER file or a wrong path (a directory listing, a config file) would otherwise surface as a handshake failure.
    if (!pem.includes('-----BEGIN ')) throw new Error(`etcd backend.tls.${what}: ${path} is not a PEM file: set it to ${TLS_FILE[what]}`);
    return pem;
  };
  return {
    // grpc's createSsl takes a missing root certificate as "use the system's CAs"; etcd3's type insists on a Buffer.
    rootCertificate: read('ca', tls.ca) as Buffer,
    privateKey: read('key', tls.key),
    certChain: read('cert', tls.cert),
  };
}

const TLS_FILE = {
  ca: "the PEM file of the CA that signed etcd's server certificate",
  cert: "the PEM file of a client certificate signed by the CA etcd trusts (its --trusted-ca-file)",
  key: 'the PEM file of the private key that belongs to backend.tls.cert',
} as const;

const TLS_FAILURE = /certificate|ssl|tls|handshake|wrong version number|self.signed|unable to verify|CERT_|EPROTO/i;

/** The part of a grpc "No connection established. Last error: …" message that names the TLS problem. */
function tlsCause(msg: string): string {
  const alert = /alert ([a-z ]+?)(?::|\n|$)/i.exec(msg);
  if (alert) return `TLS alert from etcd: ${alert[1]!.trim()}`;
  const last = /Last error: (?:Error: )?(.*?)(?:\.? Resolution note:.*)?$/s.exec(msg);
  return (last?.[1] ?? msg).trim();
}

/** What a TLS failure says about the configuration, and what to change. */
function describeTlsFailure(host: string, msg: string, o: EtcdConnectOptions): string {
  const at = `etcd at ${host}: TLS failed (${tlsCause(msg)})`;
  const tls = o.tls ?? {};
  // Go's TLS server answers a missing or untrusted client certificate with one of these alerts.
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown|unsupported certificate)|alert number (42|43|46|48|116)\b/i.test(msg)) {
    return tls.cert
      ? `${at}: etcd refused the client certificate ${tls.cert} — it must be signed by the CA etcd trusts (its --trusted-ca-file) and allow client auth; check backend.tls.cert and backend.tls.key`
      : `${at}: etcd requires a client certificate (it runs with --client-cert-auth) — set backend.tls.cert and backend.tls.key to a client certificate signed by the CA etcd trusts (its --trusted-ca-file)`;
  }
  if (/unable to verify|unable to get (local )?issuer|self.signed|certificate signature failure|UNABLE_TO_VERIFY|SELF_SIGNED/i.test(msg)) {
    return tls.ca
      ? `${at}: etcd's server certificate is not signed by the CA in backend.tls.ca (${tls.ca}) — set backend.tls.ca to the CA that signed etcd's certificate (its --cert-file)`
      : `${at}: etcd's server certificate is not signed by a CA this system trusts — set backend.tls.ca to the CA that signed it (and backend.tls.cert/backend.tls.key if etcd checks client certificates)`;
  }
  if (/altname|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME/i.test(msg)) {
    return `${at}: etcd's server certificate is not issued for the host in ${host} — connect by a name or IP in its subjectAltName, or reissue the certificate with this one`;
  }
  if (/expired|not yet valid|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/i.test(msg)) {
    return `${at}: a certificate is expired or not yet valid — renew it (or check this machine's clock)`;
  }
  if (/wrong version number|packet length too long|http request|unknown protocol/i.test(msg)) {
    return `${at}: etcd does not speak TLS on this port — use http:// and drop backend.tls, or start etcd with https:// client URLs`;
  }
  return `${at} — check backend.tls.ca (the CA that signed etcd's certificate), backend.tls.cert/backend.tls.key, and that the host uses https://`;
}

/** One line per endpoint on what went wrong, with the fix when the cause is recognisable. */
function describeEndpointFailure(host: string, e: unknown, o: EtcdConnectOptions): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof EtcdAuthenticationFailedError) return authRejected(o);
  if (needsAuth(e, o)) return AUTH_REQUIRED;
  if (e instanceof EtcdError && /authentication is not enabled/.test(msg)) {
    return `etcd at ${host} has authentication disabled: remove auth from the options, or enable auth in etcd`;
  }
  if (TLS_FAILURE.test(msg)) return describeTlsFailure(host, msg, o);
  return `etcd at ${host} is unreachable (${msg})`;
}

function authRejected(o: EtcdConnectOptions): string {
  return `etcd rejected user ${o.auth?.username ?? '(none)'}: wrong user name or password — check auth.username and auth.password`;
}

const AUTH_REQUIRED = 'etcd requires authentication: set backend.auth { username, password }';

/** etcd with auth enabled answers a request without a token so ("user name is empty"), or with a stale one so. */
function needsAuth(e: unknown, o: EtcdConnectOptions): boolean {
  if (o.auth) return false;
  return e instanceof EtcdInvalidAuthTokenError || (e instanceof Error && /user name is empty|invalid auth token/.test(e.message));
}

/** The TTL (s) of the probe's lease: a probe key left behind by a crash mid-probe is gone soon. */
const PROBE_LEASE_TTL_S = 5;

type ProbeStep = 'read' | 'write';

function describeProbeFailure(e: unknown, step: ProbeStep, host: string, probeKey: string, o: EtcdConnectOptions): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (needsAuth(e, o)) return AUTH_REQUIRED;
  if (e instanceof EtcdAuthenticationFailedError) return authRejected(o);
  const user = o.auth?.username ?? '(none)';
  const prefix = probeKey.slice(0, probeKey.lastIndexOf('/') + 1) || probeKey;
  const grant = `grant its role readwrite on the prefix (etcdctl role grant-permission <role> --prefix=true readwrite ${prefix})`;
  if (e instanceof EtcdPermissionDeniedError) {
    return step === 'read'
      ? `etcd user ${user} may not read ${prefix}*: ${grant}`
      : `etcd user ${user} may not write ${prefix}* (needs read/write on ${prefix}* and lease grant/revoke): ${grant}`;
  }
  return step === 'read'
    ? `etcd at ${host} answered but a linearizable read failed (${msg}): does etcd have a leader?`
    : `etcd at ${host} answered but a test write under a lease failed (${msg}): does etcd have a leader?`;
}

/** A client with the backend's settings and no probe (for per-endpoint status calls). */
export function etcdClient(o: EtcdConnectOptions): Etcd3 {
  return new Etcd3(clientOptions(o, o.hosts));
}

/**
 * Creates the client and probes it: maintenance.status() on each endpoint, then a linearizable get under `probeKey`,
 * then a write as the backend does them: grant a lease, put `probeKey` under it, delete it, revoke the lease.
 * Fails with an Error that says what is wrong and what to do. Endpoints that do not answer are tolerated as long as
 * one does (a member may be down); all of them are listed when none answers.
 */
export async function connectEtcd(o: EtcdConnectOptions, probeKey: string): Promise<Etcd3> {
  if (o.hosts.length === 0) throw new Error('etcd backend: no hosts given (expected e.g. http://127.0.0.1:2379)');
  const bad = o.hosts.filter((h) => !/^https?:\/\/[^/]+/.test(h));
  if (bad.length) throw new Error(`etcd hosts must look like http://host:port or https://host:port; got ${bad.join(', ')}`);
  const secure = o.hosts.filter((h) => h.startsWith('https:')).length;
  if (secure > 0 && secure < o.hosts.length) throw new Error('etcd hosts mix http:// and https://: use one scheme for all');

  // Unreadable TLS files fail here, before any connection, with the option and the path named.
  if (o.tls && (o.tls.ca || o.tls.cert || o.tls.key)) readTls(o.tls);

  const failures: string[] = [];
  let tlsFailures = 0;
  let reachable: string | null = null;
  for (const host of o.hosts) {
    const one = etcdClient({ ...o, hosts: [host] });
    try {
      await one.maintenance.status(callOptions(o.requestTimeoutMs));
      reachable ??= host;
    } catch (e) {
      if (e instanceof EtcdAuthenticationFailedError) throw new Error(authRejected(o));
      if (needsAuth(e, o)) throw new Error(AUTH_REQUIRED);
      if (TLS_FAILURE.test(e instanceof Error ? e.message : String(e))) tlsFailures++;
      failures.push(describeEndpointFailure(host, e, o));
    } finally {
      one.close();
    }
  }
  if (reachable === null) {
    // etcd answered, only the TLS setup is wrong: "check that etcd runs there" would send the reader the wrong way.
    if (tlsFailures === o.hosts.length) throw new Error(`cannot connect to etcd over TLS: ${failures.join('; ')}`);
    throw new Error(`no etcd endpoint answered within ${o.requestTimeoutMs} ms: ${failures.join('; ')}. Check the hosts and that etcd runs there`);
  }

  // Probe through a reachable endpoint: a linearizable read needs an etcd leader and read permission; the write
  // catches a read-only user here, which would otherwise fail every registration and campaign after one warning.
  const probe = etcdClient({ ...o, hosts: [reachable] });
  const opts = () => callOptions(o.requestTimeoutMs);
  let step: ProbeStep = 'read';
  let lease: string | null = null;
  try {
    await probe.get(probeKey).options(opts()).exec();
    step = 'write';
    const granted = await probe.leaseClient.leaseGrant({ TTL: PROBE_LEASE_TTL_S, ID: 0 }, opts());
    if (granted.error) throw new Error(`etcd refused a ${PROBE_LEASE_TTL_S} s lease: ${granted.error}`);
    lease = granted.ID;
    await probe.put(probeKey).value('probe').lease(lease).options(opts()).exec();
    await probe.delete().key(probeKey).options(opts()).exec();
    const revoking = lease;
    lease = null;
    await probe.leaseClient.leaseRevoke({ ID: revoking }, opts());
  } catch (e) {
    // Best effort: the lease (and a probe key on it) expires within PROBE_LEASE_TTL_S anyway.
    if (lease !== null) await probe.leaseClient.leaseRevoke({ ID: lease }, opts()).catch(() => undefined);
    throw new Error(describeProbeFailure(e, step, reachable, probeKey, o));
  } finally {
    probe.close();
  }
  return etcdClient(o);
}

/** grpc details that mean the request never left this process, or etcd refused it before proposing it. */
const NEVER_SENT =
  /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|Name resolution failed|Stream refused by server|etcdserver: no leader|etcdserver: too many requests|Waiting for LB pick|waiting for name resolution|waiting for metadata filters/;

/**
 * Maps an etcd3 error to the library's: a call that surely never reached etcd -> NoLeaderException("etcd unreachable:
 * …"); deadline exceeded / stream reset after sending -> ProposalOutcomeUnknownError; others are returned unchanged
 * (non-Error values wrapped). `what` names the operation in the message.
 */
export function toClusterError(e: unknown, what: string): Error {
  if (!(e instanceof Error)) return new Error(`${what}: ${String(e)}`);
  if (e instanceof NoLeaderException || e instanceof ProposalOutcomeUnknownError) return e;
  const transport =
    e instanceof GRPCUnavailableError ||
    e instanceof GRPCDeadlineExceededError ||
    e instanceof GRPCCancelledError ||
    e instanceof GRPCInternalError ||
    e instanceof GRPCResourceExhastedError ||
    e instanceof EtcdWatchStreamEnded;
  if (!transport) return e;
  if (NEVER_SENT.test(e.message)) return new NoLeaderException(`etcd unreachable: ${what} failed: ${e.message}`);
  if (e instanceof GRPCResourceExhastedError) return e;
  return new ProposalOutcomeUnknownError(`${what}: no answer from etcd, the outcome is unknown (${e.message})`);
}

/** True for errors that say the client itself was closed (stop in progress): not worth a warning. */
export function isClosedClient(e: unknown): boolean {
  return e instanceof ClientClosedError;
}
