import Ajv, { type ValidateFunction } from 'ajv';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { resolveClusterOptions } from '../../lib/cluster/options';
import { probePath } from '../../lib/nest/ops/health.controller';
import { resolveRoutes } from '../../lib/nest/ops/ops-routes';
import { parseMembers } from '../../lib/transport/member-address';

/**
 * deploy/compose: compose.yaml is valid against the Compose specification's JSON schema (vendored in
 * test/deploy/compose-spec, see its README), and fits the library: member list, ids, ports, probe path, data dirs on
 * volumes, the secret, and the image's entrypoint and Dockerfile.
 */

const ROOT = resolve(__dirname, '../..');
const DIR = join(ROOT, 'deploy/compose');
const read = (file: string) => readFileSync(join(DIR, file), 'utf8');

type Obj = Record<string, any>;

/** Parses Compose YAML as Compose does: YAML 1.2 plus the `<<` merge keys its fragments rely on. */
function parseCompose(text: string, name: string): Obj {
  const doc = parseDocument(text, { merge: true });
  if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors.map((e) => e.message).join('; ')}`);
  return doc.toJS({ maxAliasCount: 100 }) as Obj;
}

/** The vendored schema compiled with ajv (strict, except for union types the schema uses on purpose). */
function composeValidator(): ValidateFunction {
  const schema = JSON.parse(readFileSync(join(__dirname, 'compose-spec/compose-spec.json'), 'utf8')) as Obj;
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strictTypes: false });
  // The schema names its dialect by the https URL without the trailing '#'; ajv registers draft-07 under the http one.
  const draft7 = require('ajv/dist/refs/json-schema-draft-07.json') as Obj;
  ajv.addMetaSchema({ ...draft7, $id: schema.$schema });
  return ajv.compile(schema);
}

const validate = composeValidator();
const schemaErrors = (doc: Obj): string[] => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`));

const compose = parseCompose(read('compose.yaml'), 'compose.yaml');
const services = Object.entries(compose.services as Record<string, Obj>);
const envOf = (s: Obj): Record<string, string> => s.environment as Record<string, string>;

describe('deploy/compose/compose.yaml', () => {
  test('is valid against the Compose specification schema', () => {
    expect(schemaErrors(compose)).toEqual([]);
  });

  test('the validation rejects a broken file', () => {
    const misspelt = structuredClone(compose);
    misspelt.services.node1.healtcheck = misspelt.services.node1.healthcheck;
    expect(schemaErrors(misspelt).join('\n')).toMatch(/\/services\/node1 must NOT have additional properties.*healtcheck/);
    const badPorts = structuredClone(compose);
    badPorts.services.node2.ports = '127.0.0.1:3002:3000';
    expect(schemaErrors(badPorts).join('\n')).toMatch(/\/services\/node2\/ports must be array/);
    const badVolume = structuredClone(compose);
    badVolume.volumes['node3-data'] = { driver: 7 };
    expect(schemaErrors(badVolume).join('\n')).toMatch(/\/volumes\/node3-data\/driver must be string/);
    expect(() => parseCompose('services: [node1: {', 'broken.yaml')).toThrow(/broken\.yaml/);
  });

  test('three members: each service is the member of its own id, on one member list the nodes resolve', () => {
    expect(services.map(([name]) => name)).toEqual(['node1', 'node2', 'node3']);
    const lists = new Set(services.map(([, s]) => envOf(s).CATGA_MEMBERS));
    expect(lists.size).toBe(1);
    const members = parseMembers([...lists][0]!.split(','));
    for (const [name, s] of services) {
      const env = envOf(s);
      expect(env.CATGA_NODE_ID).toBe(name);
      // Peers dial the service name on the project network; the container listens on every interface.
      const self = members.find((m) => m.id === name);
      expect(self).toMatchObject({ host: name, port: 7001 });
      expect(s.hostname).toBe(name);
      expect(s.expose).toEqual(['7001']);
      const o = resolveClusterOptions({}, { ...env, CATGA_SECRET: 'a-secret-for-the-test' });
      expect({ networked: o.networked, nodeId: o.nodeId, listenHost: o.listenHost, dataDir: o.dataDir }).toEqual({
        networked: true,
        nodeId: name,
        listenHost: '0.0.0.0',
        dataDir: '/data',
      });
    }
  });

  test('the cluster port is never published; HTTP is, on the loopback, to the port the sample listens on', () => {
    const portVar = /process\.env\.([A-Z_]+)/.exec(readFileSync(join(ROOT, 'sample/main.ts'), 'utf8'))?.[1];
    expect(portVar).toBe('PORT');
    const hostPorts = new Set<string>();
    for (const [, s] of services) {
      const http = envOf(s).PORT!;
      expect(envOf(s).HOST).toBe('0.0.0.0');
      for (const p of s.ports as string[]) {
        const [ip, host, container] = p.split(':');
        expect({ ip, container }).toEqual({ ip: '127.0.0.1', container: http });
        hostPorts.add(host!);
      }
    }
    expect(hostPorts.size).toBe(services.length);
  });

  test("the healthcheck asks the library's readiness route, and never restarts a node for having no leader", () => {
    const health = resolveRoutes({}).health;
    expect(health).not.toBeNull();
    for (const [, s] of services) {
      const test = (s.healthcheck.test as string[]).join(' ');
      expect(test).toContain(`http://127.0.0.1:${envOf(s).PORT}${probePath(health!, 'ready')}`);
      expect(s.restart).toBe('unless-stopped');
      expect(s.depends_on).toBeUndefined(); // no member waits for another: a lone node is never ready
    }
  });

  test('each node keeps its data dir on a volume of its own, which `down` keeps', () => {
    const volumes = services.map(([, s]) => {
      const mounts = (s.volumes as string[]).map((v) => v.split(':'));
      const data = mounts.find(([, target]) => target === envOf(s).CATGA_DATA_DIR);
      expect(data).toBeDefined();
      return data![0]!;
    });
    expect(new Set(volumes).size).toBe(services.length);
    expect(Object.keys(compose.volumes).sort()).toEqual([...volumes].sort());
    for (const v of volumes) expect(compose.volumes[v]?.external).toBeUndefined();
  });

  test('the secret comes from a Compose secret file, never from the file itself', () => {
    for (const [, s] of services) {
      expect(s.secrets).toEqual(['catga_secret']);
      expect(envOf(s).CATGA_SECRET).toBeUndefined();
    }
    expect(compose.secrets.catga_secret).toEqual({ file: './catga-secret' });
    expect(read('.gitignore')).toMatch(/^catga-secret\*$/m);
    expect(read('Dockerfile.dockerignore')).toMatch(/^deploy\/compose\/catga-secret\*$/m);
  });

  test('a graceful stop leaves a leader time to hand over', () => {
    for (const [, s] of services) expect(s.stop_grace_period).toMatch(/^(\d+)s$/);
    expect(Number(/^(\d+)s$/.exec(services[0]![1].stop_grace_period)![1])).toBeGreaterThanOrEqual(10);
  });
});

describe('the Compose image', () => {
  const service = services[0]![1];

  test('is built from this repository with the Dockerfile beside compose.yaml', () => {
    expect(resolve(DIR, service.build.context)).toBe(ROOT);
    expect(existsSync(join(ROOT, service.build.dockerfile))).toBe(true);
    for (const [, s] of services) expect(s.image).toBe(service.image);
  });

  test('the Dockerfile builds the sample, owns /data for the node user and starts through the entrypoint', () => {
    const dockerfile = read('Dockerfile');
    const outDir = /"outDir"\s*:\s*"([^"]+)"/.exec(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'))?.[1];
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(dockerfile).toContain(`CMD ["node", "${outDir}/sample/main.js"]`);
    expect(dockerfile).toMatch(new RegExp(`RUN mkdir ${envOf(service).CATGA_DATA_DIR} && chown node:node ${envOf(service).CATGA_DATA_DIR}\\n(.*\\n)*USER node`));
    expect(dockerfile).toMatch(/COPY --chmod=755 deploy\/compose\/entrypoint\.sh (\S+)\n(.*\n)*ENTRYPOINT \["catga-compose-entrypoint"\]/);
    expect(existsSync(join(DIR, 'entrypoint.sh'))).toBe(true);
  });

  describe('entrypoint.sh', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'catga-compose-secrets-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const run = (env: Record<string, string> = {}) =>
      spawnSync('sh', [join(DIR, 'entrypoint.sh'), 'sh', '-c', 'printf "%s|%s" "$CATGA_SECRET" "${CATGA_SECRET_ACCEPTED:-}"'], {
        env: { PATH: process.env.PATH, CATGA_SECRETS_DIR: dir, ...env },
        encoding: 'utf8',
      });

    test('reads the secret file the service mounts into CATGA_SECRET, without its trailing newline', () => {
      writeFileSync(join(dir, service.secrets[0]), 'the-cluster-secret\n');
      expect(run()).toMatchObject({ status: 0, stdout: 'the-cluster-secret|' });
    });

    test('adds the accepted secret while one is rotated', () => {
      writeFileSync(join(dir, 'catga_secret'), 'new-secret-123\n');
      writeFileSync(join(dir, 'catga_secret_accepted'), 'old-secret-123\n');
      expect(run().stdout).toBe('new-secret-123|old-secret-123');
      // The library turns the two into [current, accepted].
      const o = resolveClusterOptions({}, { ...envOf(service), CATGA_SECRET: 'new-secret-123', CATGA_SECRET_ACCEPTED: 'old-secret-123' });
      expect(o.secret).toEqual(['new-secret-123', 'old-secret-123']);
    });

    test('refuses to start without a secret, saying where it looked', () => {
      const r = run();
      expect(r.status).toBe(64);
      expect(r.stderr).toContain(`${dir}/catga_secret is missing`);
    });
  });
});
