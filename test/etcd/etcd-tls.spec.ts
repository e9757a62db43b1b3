/**
 * The etcd backend against a one-member etcd that serves clients over mutual TLS: the right CA and client certificate
 * start a node; a wrong CA, a missing or untrusted client certificate, an unreadable CA file or no TLS options at all
 * fail at startup, within a few seconds, with a message that names the backend.tls option to fix.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster } from '../../lib/cluster/create-cluster';
import { connectEtcd, type EtcdConnectOptions } from '../../lib/cluster/etcd/etcd-client';
import { findEtcd } from '../support/etcd-binary';
import { freePorts } from '../transport/helpers';
import { failure } from '../support/failure';

jest.setTimeout(60_000);

const REQUEST_TIMEOUT = 2_000;
const quiet = { log() {}, warn() {}, error() {} };

let dir = '';
let host = '';
let etcd: ChildProcess | null = null;
let etcdOutput = '';
/** PEM file paths under `dir`. */
const pem = (name: string): string => join(dir, name);
/** The CA that signed etcd's certificate, and a client certificate etcd trusts. */
const good = () => ({ ca: pem('ca.crt'), cert: pem('client.crt'), key: pem('client.key') });

/**
 * A CA with a server certificate for 127.0.0.1 and a client certificate it signed; an unrelated CA with a client
 * certificate ("stranger") that etcd does not trust.
 */
function makeCerts(): void {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(pem('server.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(pem('client.cnf'), 'extendedKeyUsage=clientAuth\n');
  ssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=catga etcd test CA', '-days', '1');
  ssl('req', '-x509', ...ecKey, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-subj', '/CN=unrelated CA', '-days', '1');
  for (const n of ['server', 'client']) {
    ssl('req', ...ecKey, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`);
    ssl('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.crt`, '-days', '1', '-extfile', `${n}.cnf`);
  }
  ssl('req', ...ecKey, '-keyout', 'stranger.key', '-out', 'stranger.csr', '-subj', '/CN=stranger');
  ssl('x509', '-req', '-in', 'stranger.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-out', 'stranger.crt', '-days', '1', '-extfile', 'client.cnf');
}


/** Starts a node through the public entry point with these etcd TLS options. */
async function startNode(tls: EtcdConnectOptions['tls'] | undefined) {
  const [own] = await freePorts(1);
  return createCluster({
    nodeId: `n${randomUUID().slice(0, 8)}`,
    advertise: `127.0.0.1:${own}`,
    secret: 'etcd-tls-test-secret',
    dataDir: join(dir, 'node', randomUUID()),
    requestTimeout: REQUEST_TIMEOUT,
    backend: { type: 'etcd', hosts: [host], prefix: `tls/${randomUUID()}/`, ...(tls ? { tls } : {}) },
    logger: quiet,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'catga-etcd-tls-'));
  makeCerts();
  const [clientPort, peerPort] = await freePorts(2);
  host = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    findEtcd().path,
    [
      '--name=t1',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${host}`,
      `--advertise-client-urls=${host}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=t1=${peer}`,
      '--initial-cluster-state=new',
      `--cert-file=${pem('server.crt')}`,
      `--key-file=${pem('server.key')}`,
      '--client-cert-auth',
      `--trusted-ca-file=${pem('ca.crt')}`,
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=error',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  etcd = child;
  const keep = (b: Buffer) => {
    etcdOutput = (etcdOutput + b.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', () => {
    if (etcd === child) etcd = null;
  });
  // If the worker dies before afterAll, etcd must not outlive it.
  process.once('exit', () => child.kill('SIGKILL'));
  // Ready once the probe passes with the right credentials (a single member elects itself at once).
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      (await connectEtcd({ hosts: [host], tls: good(), requestTimeoutMs: 1_000 }, 'ready/probe')).close();
      return;
    } catch (e) {
      if (etcd === null || Date.now() > deadline) throw new Error(`etcd over TLS did not come up (${(e as Error).message}):\n${etcdOutput}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

afterAll(async () => {
  const child = etcd;
  if (child) {
    // Waits for the exit: etcd still writing its data dir would race the removal below.
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await gone;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts a node with `tls` and returns how it failed, checking it failed within a few seconds. */
async function startupFailure(tls: EtcdConnectOptions['tls'] | undefined): Promise<string> {
  const t0 = Date.now();
  const e = await failure(startNode(tls));
  expect(Date.now() - t0).toBeLessThan(REQUEST_TIMEOUT + 1_000);
  return e.message;
}

test('the right CA and client certificate: the node starts and leads', async () => {
  const node = await startNode(good());
  try {
    expect(await node.waitForLeader({ timeout: 10_000 })).toBe(node.nodeId);
  } finally {
    await node.stop();
  }
});

test('a CA that did not sign etcd\'s certificate: names TLS and backend.tls.ca', async () => {
  const m = await startupFailure({ ...good(), ca: pem('other-ca.crt') });
  expect(m).toMatch(/^cannot connect to etcd over TLS: /);
  expect(m).toContain(`etcd at ${host}: TLS failed (`);
  expect(m).toContain(`not signed by the CA in backend.tls.ca (${pem('other-ca.crt')}) — set backend.tls.ca to the CA that signed etcd's certificate`);
  // etcd answered: a hint to check that etcd runs would mislead.
  expect(m).not.toMatch(/unreachable|etcd runs there/);
});

test('no client certificate against --client-cert-auth: says to set backend.tls.cert and backend.tls.key', async () => {
  const m = await startupFailure({ ca: pem('ca.crt') });
  expect(m).toMatch(/^cannot connect to etcd over TLS: /);
  expect(m).toContain('etcd requires a client certificate');
  expect(m).toContain('set backend.tls.cert and backend.tls.key');
});

test('a client certificate from a CA etcd does not trust: names the certificate file', async () => {
  const m = await startupFailure({ ca: pem('ca.crt'), cert: pem('stranger.crt'), key: pem('stranger.key') });
  expect(m).toContain(`etcd refused the client certificate ${pem('stranger.crt')}`);
  expect(m).toContain('check backend.tls.cert and backend.tls.key');
});

test('an https host without backend.tls: the system CAs reject the server, and the message says to set backend.tls', async () => {
  const m = await startupFailure(undefined);
  expect(m).toMatch(/^cannot connect to etcd over TLS: /);
  expect(m).toContain("not signed by a CA this system trusts — set backend.tls.ca");
});

describe('TLS files are checked before any connection', () => {
  /** No etcd listens on a fresh free port: a message about the file proves nothing was dialled first. */
  async function connectNowhere(tls: EtcdConnectOptions['tls']): Promise<string> {
    const [port] = await freePorts(1);
    const e = await failure(connectEtcd({ hosts: [`https://127.0.0.1:${port}`], tls, requestTimeoutMs: REQUEST_TIMEOUT }, 'p/probe'));
    return e.message;
  }

  test('a tls.ca path that does not exist: names the option and the path', async () => {
    const missing = join(dir, 'no-such-ca.crt');
    const expected = `etcd backend.tls.ca: cannot read ${missing} (no such file): set it to the PEM file of the CA that signed etcd's server certificate`;
    expect(await startupFailure({ ...good(), ca: missing })).toBe(expected);
    expect(await connectNowhere({ ...good(), ca: missing })).toBe(expected);
  });

  test('a file that is not PEM, or a certificate without its key: names the option', async () => {
    expect(await connectNowhere({ ca: pem('client.cnf') })).toBe(
      `etcd backend.tls.ca: ${pem('client.cnf')} is not a PEM file: set it to the PEM file of the CA that signed etcd's server certificate`,
    );
    expect(await connectNowhere({ ca: pem('ca.crt'), cert: pem('client.crt') })).toBe(
      'etcd backend.tls.cert is set without backend.tls.key: a client certificate needs both (PEM file paths)',
    );
  });
});
