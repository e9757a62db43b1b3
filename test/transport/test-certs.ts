import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pem {
  readonly key: Buffer;
  readonly cert: Buffer;
}

export interface TestCerts {
  /** The self-signed CA every member trusts. */
  readonly ca: Buffer;
  /** Certificates the CA signed, by name (SAN 127.0.0.1, server and client use). */
  readonly nodes: ReadonlyMap<string, Pem>;
  /** Self-signed with the same SAN, trusted by nobody. */
  readonly impostor: Pem;
}

export const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/**
 * Makes a throwaway self-signed CA and certificates with openssl in `dir` (valid one day). The impostor's common name
 * is `impostorName` (e.g. a member's, to show the name alone proves nothing).
 */
export function makeCerts(dir: string, names: readonly string[], impostorName = 'impostor'): TestCerts {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ext = join(dir, 'ext.cnf');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=catga test CA', '-days', '1');
  const nodes = new Map<string, Pem>();
  for (const n of names) {
    ssl('req', ...ecKey, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`);
    ssl('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.crt`, '-days', '1', '-extfile', ext);
    nodes.set(n, { key: readFileSync(join(dir, `${n}.key`)), cert: readFileSync(join(dir, `${n}.crt`)) });
  }
  ssl('req', '-x509', ...ecKey, '-keyout', 'imp.key', '-out', 'imp.crt', '-subj', `/CN=${impostorName}`, '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1');
  const impostor = { key: readFileSync(join(dir, 'imp.key')), cert: readFileSync(join(dir, 'imp.crt')) };
  return { ca: readFileSync(join(dir, 'ca.crt')), nodes, impostor };
}
