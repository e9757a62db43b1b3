import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { probePath } from '../../lib/nest/ops/health.controller';
import { resolveRoutes } from '../../lib/nest/ops/ops-routes';

/**
 * deploy/kubernetes: every manifest is valid against the Kubernetes API schema (kubernetes-models, the OpenAPI schema
 * of Kubernetes 1.33 compiled to validators), and the StatefulSet fits the library: probe paths, ports, env names,
 * and the entrypoint's found-or-join choice.
 */

const ROOT = resolve(__dirname, '../..');
const DIR = join(ROOT, 'deploy/kubernetes');
const read = (file: string) => readFileSync(join(DIR, file), 'utf8');

type Obj = Record<string, any>;

function parseYaml(text: string, name: string): Obj[] {
  return parseAllDocuments(text)
    .filter((d) => d.contents !== null)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${name}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as Obj;
    });
}

/** Validates one object with the kubernetes-models class for its apiVersion and kind; throws the schema errors. */
function validateK8s(doc: Obj): void {
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new Error('apiVersion and kind must be strings');
  let models: Record<string, new (data: Obj) => { validate(): void }>;
  try {
    // Group/version paths match apiVersion: 'v1', 'apps/v1', 'policy/v1'.
    models = require(`kubernetes-models/${apiVersion}`);
  } catch {
    throw new Error(`no Kubernetes schema for apiVersion ${apiVersion}`);
  }
  const Model = models[kind];
  if (typeof Model !== 'function') throw new Error(`no Kubernetes schema for ${apiVersion} ${kind}`);
  new Model(doc).validate();
}

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const manifests = files.filter((f) => f !== 'kustomization.yaml');
const docs = manifests.flatMap((f) => parseYaml(read(f), f).map((doc) => ({ file: f, doc })));
const find = (kind: string, name: string): Obj => {
  const hit = docs.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name);
  if (!hit) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return hit.doc;
};

const sts = find('StatefulSet', 'catga');
const headless = find('Service', sts.spec.serviceName);
const pod = sts.spec.template.spec;
const app = pod.containers[0];
const env: Obj[] = app.env;
const portNumber = (port: string | number) => (typeof port === 'number' ? port : app.ports.find((p: Obj) => p.name === port)?.containerPort);
const envValue = (name: string) => env.find((e) => e.name === name)?.value as string | undefined;

/** The probe routes under the library's default healthPath: `${health}/ready` and `${health}/live`. */
function healthRoutes(): { ready: string; live: string } {
  const health = resolveRoutes({}).health;
  if (health === null) throw new Error('the default healthPath serves no probes');
  return { ready: probePath(health, 'ready'), live: probePath(health, 'live') };
}

/** Expands $(NAME) the way the kubelet does: only variables defined earlier in the list, with the given field values. */
function podEnv(fields: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.valueFrom?.fieldRef) out[e.name] = fields[e.valueFrom.fieldRef.fieldPath]!;
    else if (e.value !== undefined) out[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => out[n] ?? m);
  }
  return out;
}

describe('Kubernetes manifests in deploy/kubernetes', () => {
  test.each(docs.map((d) => [`${d.file}: ${d.doc.kind} ${d.doc.metadata?.name}`, d.doc] as const))('%s is valid against the Kubernetes schema', (_, doc) => {
    expect(() => validateK8s(doc)).not.toThrow();
  });

  test('the validation rejects a broken manifest', () => {
    const replicas = structuredClone(sts);
    replicas.spec.replicas = '3';
    expect(() => validateK8s(replicas)).toThrow(/replicas must be integer/);
    const port = structuredClone(sts);
    port.spec.template.spec.containers[0].ports[0].containerPort = '3000';
    expect(() => validateK8s(port)).toThrow(/containerPort must be integer/);
    expect(() => validateK8s({ ...sts, kind: 'StatefulSets' })).toThrow(/no Kubernetes schema/);
    expect(() => parseYaml('spec: [replicas: 3', 'broken.yaml')).toThrow(/broken\.yaml/);
  });

  test('kustomization.yaml lists every manifest but the example Secret', () => {
    const [k] = parseYaml(read('kustomization.yaml'), 'kustomization.yaml');
    expect([...k!.resources].sort()).toEqual(manifests.filter((f) => f !== 'secret.example.yaml').sort());
  });

  test('a StatefulSet of 3 behind a headless Service that publishes pods before they are Ready', () => {
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.podManagementPolicy).toBe('Parallel'); // why: statefulset.yaml
    expect(sts.spec.template.metadata.labels).toMatchObject(sts.spec.selector.matchLabels);
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector: sts.spec.selector.matchLabels });
    expect(headless.spec.ports.map((p: Obj) => portNumber(p.targetPort))).toEqual([7001]);
    const http = find('Service', 'catga-http');
    expect(http.spec.selector).toEqual(sts.spec.selector.matchLabels);
    expect(http.spec.ports.map((p: Obj) => portNumber(p.targetPort))).toEqual([Number(envValue('PORT'))]);
    const pdb = find('PodDisruptionBudget', 'catga');
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: sts.spec.selector });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
  });

  test("probes use the library's health routes on the port the sample serves HTTP on", () => {
    // sample/main.ts takes its HTTP port from one variable; the container sets it to its port named http.
    const portVar = /process\.env\.([A-Z_]+)/.exec(readFileSync(join(ROOT, 'sample/main.ts'), 'utf8'))?.[1];
    expect(portVar).toBe('PORT');
    const httpPort = Number(envValue(portVar!));
    expect(portNumber('http')).toBe(httpPort);
    const { ready, live } = healthRoutes();
    expect(app.readinessProbe.httpGet).toEqual({ path: ready, port: 'http' });
    expect(app.livenessProbe.httpGet).toEqual({ path: live, port: 'http' });
    expect(portNumber(app.readinessProbe.httpGet.port)).toBe(httpPort);
  });

  test('env names are ones the library or the sample reads', () => {
    const options = readFileSync(join(ROOT, 'lib/cluster/options.ts'), 'utf8');
    const sample = readFileSync(join(ROOT, 'sample/main.ts'), 'utf8');
    const library = new Set(options.match(/\bCATGA_[A-Z_]+\b/g) ?? []);
    const sampleReads = new Set([...sample.matchAll(/process\.env\.([A-Z_]+)/g)].map((m) => m[1]));
    const referenced = new Set(env.flatMap((e) => [...String(e.value ?? '').matchAll(/\$\(([A-Z_]+)\)/g)].map((m) => m[1])));
    for (const { name } of env) {
      // POD_NAME and NAMESPACE are downward-API inputs to the values of others, so they must be used by one.
      expect({ name, known: library.has(name) || sampleReads.has(name) || referenced.has(name) }).toEqual({ name, known: true });
    }
    expect(env.find((e) => e.name === 'CATGA_NODE_ID')).toEqual({ name: 'CATGA_NODE_ID', value: '$(POD_NAME)' });
    const secret = find('Secret', 'catga-secret');
    const ref = env.find((e) => e.name === 'CATGA_SECRET')?.valueFrom?.secretKeyRef;
    expect(ref).toEqual({ name: 'catga-secret', key: Object.keys(secret.stringData)[0] });
    // The data dir is on the per-pod volume.
    const claims = sts.spec.volumeClaimTemplates.map((c: Obj) => c.metadata.name);
    const mount = app.volumeMounts.find((m: Obj) => m.mountPath === envValue('CATGA_DATA_DIR'));
    expect(claims).toContain(mount?.name);
  });

  describe('catga-entrypoint.sh', () => {
    const run = (podName: string) => {
      const vars = podEnv({ 'metadata.name': podName, 'metadata.namespace': 'prod' });
      const r = spawnSync('sh', [join(DIR, 'catga-entrypoint.sh'), 'sh', '-c', 'printf "%s|%s" "${CATGA_MEMBERS:-}" "${CATGA_JOIN:-}"'], {
        env: { PATH: process.env.PATH, ...vars },
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      const [members, seeds] = r.stdout.split('|');
      return { vars, members, join: seeds };
    };
    const address = (id: string) => `${id}.${headless.metadata.name}.prod.svc.cluster.local:${portNumber('cluster')}`;

    test('advertises the pod on the headless Service at the cluster port', () => {
      expect(run('catga-1').vars.CATGA_ADVERTISE).toBe(address('catga-1'));
      expect(headless.spec.ports[0].port).toBe(7001);
    });

    test('catga-0 founds a cluster of itself', () => {
      expect(run('catga-0')).toMatchObject({ members: `catga-0=${address('catga-0')}`, join: '' });
    });

    test('the other pods join through the pods with a lower ordinal', () => {
      expect(run('catga-2')).toMatchObject({ members: '', join: `${address('catga-0')},${address('catga-1')}` });
    });
  });

  test('the Dockerfile builds the sample and starts it through the entrypoint', () => {
    const dockerfile = read('Dockerfile');
    const outDir = /"outDir"\s*:\s*"([^"]+)"/.exec(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'))?.[1];
    expect(dockerfile).toMatch(/RUN npm ci\b/);
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(dockerfile).toContain(`CMD ["node", "${outDir}/sample/main.js"]`);
    expect(dockerfile).toContain('deploy/kubernetes/catga-entrypoint.sh');
  });
});
