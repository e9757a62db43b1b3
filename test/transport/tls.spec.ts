import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { MessageType, message } from '../../lib/raft/index.js';
import type { TcpNetworkTlsOptions } from '../../lib/transport/tcp-network.js';
import { connected, fullyConnected, testCluster, waitFor, type TestCluster } from './helpers.js';
import { haveOpenssl, makeCerts, type Pem } from './test-certs.js';

if (!haveOpenssl) console.warn('tls.spec: openssl is not on PATH; skipping the mutual TLS tests');

/** Connects as a TLS client; resolves with how it ended: 'rejected' if the server refused it. */
function tryClient(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...options });
    let err = '';
    s.on('error', (e) => {
      err = e.message;
    });
    // With TLS 1.3 the server checks the client certificate after the client considers the handshake done.
    s.on('close', () => resolve(`closed${err === '' ? '' : `: ${err}`}`));
    s.setTimeout(3000, () => s.destroy());
  });
}

(haveOpenssl ? describe : describe.skip)('mutual TLS', () => {
  let dir = '';
  let certs: ReturnType<typeof makeCerts>;
  let cluster: TestCluster | null = null;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'catga-tls-'));
    certs = makeCerts(dir, ['a', 'b', 'c'], 'a');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  const tlsFor = (id: string, pem: Pem = certs.nodes.get(id)!): TcpNetworkTlsOptions => ({ key: pem.key, cert: pem.cert, ca: certs.ca });

  it('connects members with CA-signed certificates and carries raft and calls', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], {}, []));
    for (const id of c.ids) await c.start(id, { tls: tlsFor(id) });
    await fullyConnected(c);
    c.nets.get('c')!.sendRaft(message({ type: MessageType.Vote, from: 'c', to: 'a', term: 9 }));
    await waitFor(() => c.handlers.get('a')!.count === 1, 'the vote over TLS');
    expect(Buffer.from(await c.nets.get('a')!.call('c', Buffer.from('q'), 2000)).toString()).toBe('a:q');
  });

  it('refuses clients without a CA-signed certificate, and members presenting one', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], {}, []));
    await c.start('a', { tls: tlsFor('a') });
    await c.start('b', { tls: tlsFor('b') });
    await fullyConnected(c, ['a', 'b']);
    const port = Number(c.members[1]!.split(':').pop());

    const noCert = await tryClient(port, { ca: certs.ca });
    const selfSigned = await tryClient(port, { ca: certs.ca, key: certs.impostor.key, cert: certs.impostor.cert });
    expect(noCert).toMatch(/^closed/);
    expect(selfSigned).toMatch(/^closed/);
    const lb = c.loggers.get('b')!;
    await waitFor(() => lb.warned(/from 127\.0\.0\.1:\d+: no client certificate/), 'b to log the client without a certificate');
    await waitFor(() => lb.warned(/from 127\.0\.0\.1:\d+: client certificate refused: DEPTH_ZERO_SELF_SIGNED_CERT/), 'b to log the impostor');

    // A member whose certificate the CA did not sign: a and b refuse it when dialing it, and it cannot dial them.
    await c.start('c', { tls: tlsFor('c', certs.impostor) });
    await waitFor(() => c.loggers.get('a')!.logs.some((l) => /cannot reach c at .*certificate/i.test(l)), 'a to refuse c\'s certificate');
    expect(connected(c.nets.get('a')!, 'c')).toBe(false);
    expect(Buffer.from(await c.nets.get('a')!.call('b', Buffer.from('still'), 2000)).toString()).toBe('a:still');
  });
});
