/**
 * The security options as a user sets them, through createCluster: a multi-member cluster without a secret refuses
 * to start unless `insecure: true` (then it warns loudly), and the `tls` option runs a cluster on certificates from a
 * self-signed CA and keeps out a member whose certificate that CA did not sign. (tls.spec.ts tests TcpNetwork's TLS.)
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import { createCluster } from '../../lib/cluster/create-cluster.js';
import type { ClusterLogger } from '../../lib/cluster/logger.js';
import { ClusterOptionsError, type ClusterOptions } from '../../lib/cluster/options.js';
import { freePorts, sleep, waitFor } from './helpers.js';
import { haveOpenssl, makeCerts, type TestCerts } from './test-certs.js';

jest.setTimeout(30_000);

class Lines implements ClusterLogger {
  readonly warns: string[] = [];
  readonly logs: string[] = [];
  log(m: string): void {
    this.logs.push(m);
  }
  warn(m: string): void {
    this.warns.push(m);
  }
  error(m: string): void {
    this.warns.push(`error: ${m}`);
  }
}

let dir = '';
let members: string[] = [];
const started: ClusterCoordinator[] = [];
const savedSecret = process.env.CATGA_SECRET;

beforeEach(async () => {
  delete process.env.CATGA_SECRET; // the options must come from the test alone
  dir = fs.mkdtempSync(path.join(tmpdir(), 'catga-security-'));
  members = (await freePorts(3)).map((p, i) => `${'abc'[i]}=127.0.0.1:${p}`);
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
  if (savedSecret !== undefined) process.env.CATGA_SECRET = savedSecret;
});

async function start(id: string, extra: Partial<ClusterOptions>): Promise<ClusterCoordinator> {
  const c = await createCluster({ nodeId: id, members, dataDir: path.join(dir, id), electionTimeout: 300, heartbeatInterval: 50, ...extra });
  started.push(c);
  return c;
}

function portFree(member: string): Promise<boolean> {
  const port = Number(member.split(':').pop());
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('the secret gate', () => {
  it('a multi-member cluster without a secret refuses to start, before touching its dataDir or its port', async () => {
    const err = await start('a', { logger: new Lines() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterOptionsError);
    expect((err as Error).message).toMatch(/option secret: expected a shared secret for a multi-member cluster \(CATGA_SECRET\), or insecure: true/);
    expect(fs.existsSync(path.join(dir, 'a'))).toBe(false);
    expect(await portFree(members[0]!)).toBe(true);
  });

  it('insecure: true starts without a secret and says so loudly, at warning level', async () => {
    const lines = new Lines();
    await start('a', { insecure: true, logger: lines });
    expect(lines.warns.some((w) => /running WITHOUT a cluster secret \(insecure: true\): any process that reaches the cluster port can act as a member/.test(w))).toBe(true);
    expect(lines.warns.some((w) => /no secret configured: peers are identified but not authenticated/.test(w))).toBe(true);
  });

  it('a secret of fewer than 8 characters is refused', async () => {
    await expect(start('a', { secret: 'short', logger: new Lines() })).rejects.toThrow(/option secret: expected a string of at least 8 characters/);
  });
});

(haveOpenssl ? describe : describe.skip)('the tls option with a self-signed CA', () => {
  let certs: TestCerts;
  let certDir = '';
  beforeAll(() => {
    certDir = fs.mkdtempSync(path.join(tmpdir(), 'catga-certs-'));
    certs = makeCerts(certDir, ['a', 'b', 'c']);
  });
  afterAll(() => fs.rmSync(certDir, { recursive: true, force: true }));

  const tlsOf = (id: string) => ({ key: certs.nodes.get(id)!.key, cert: certs.nodes.get(id)!.cert, ca: certs.ca });

  it('members with certificates the CA signed form a cluster; one with a self-signed certificate is kept out', async () => {
    const secret = 'tls-and-a-secret-too';
    const loggers = { a: new Lines(), b: new Lines(), c: new Lines() };
    const a = await start('a', { secret, tls: tlsOf('a'), logger: loggers.a });
    const b = await start('b', { secret, tls: tlsOf('b'), logger: loggers.b });
    const c = await start('c', { secret, tls: { key: certs.impostor.key, cert: certs.impostor.cert, ca: certs.ca }, logger: loggers.c });
    await a.waitForLeader({ timeout: 10_000 });
    const w = await a.store.put('over-tls', 'yes');
    expect(w.version).toBe(1);
    expect((await b.store.get('over-tls', { consistency: 'linearizable' }))?.value).toBe('yes');
    await sleep(500);
    expect(c.status()).toMatchObject({ appliedIndex: 0, commitIndex: 0, leaderId: '' });
    expect(c.isConnectedTo('a')).toBe(false);
    // a and b dial c (the smaller id dials) and refuse its certificate.
    for (const l of [loggers.a, loggers.b]) {
      await waitFor(() => l.logs.some((m) => /cannot reach c at 127\.0\.0\.1:\d+: self[- ]signed certificate/i.test(m)), 'a and b to refuse c');
    }
  });

  it('without a secret, tls alone is enough to start (the certificates authenticate the hosts)', async () => {
    const lines = new Lines();
    const a = await start('a', { tls: tlsOf('a'), logger: lines });
    await start('b', { tls: tlsOf('b'), logger: new Lines() });
    await a.waitForLeader({ timeout: 10_000 });
    expect((await a.store.put('tls-only', 1)).version).toBe(1);
    expect(lines.warns.some((w) => /WITHOUT a cluster secret/.test(w))).toBe(false);
  });
});
