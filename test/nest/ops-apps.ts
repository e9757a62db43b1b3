import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatgaClusterModule, ClusterCoordinator, type ClusterModuleOptions, type ClusterRouteOptions } from '../../lib/index';
import { OrdersModule } from './fixtures';

/** Apps of the ops specs: real Nest HTTP servers (express) on 127.0.0.1, real cluster ports, real dataDirs. */

export const quiet = { log() {}, warn() {}, error() {} };

export interface HttpApp {
  readonly app: INestApplication;
  readonly port: number;
  get(path: string): Promise<{ status: number; headers: Headers; text: string; json: any }>;
}

export interface AppExtras {
  readonly imports?: readonly (Type<unknown> | DynamicModule)[];
  readonly controllers?: readonly Type<unknown>[];
  readonly prefix?: string;
}

export async function startHttpApp(cluster: DynamicModule, port: number, extras: AppExtras = {}): Promise<HttpApp> {
  const ref = await Test.createTestingModule({
    imports: [CqrsModule.forRoot(), cluster, OrdersModule, ...(extras.imports ?? [])],
    controllers: [...(extras.controllers ?? [])],
  }).compile();
  const app = ref.createNestApplication({ logger: false });
  if (extras.prefix) app.setGlobalPrefix(extras.prefix);
  await app.listen(port, '127.0.0.1');
  return { app, port, get: (path) => httpGet(port, path) };
}

export async function httpGet(port: number, path: string) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  const json = r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : null;
  return { status: r.status, headers: r.headers, text, json };
}

export interface OpsNode extends HttpApp {
  readonly id: string;
  readonly cluster: ClusterCoordinator;
  /** Closes the app (its cluster node stops; a leader hands over first). */
  close(): Promise<void>;
}

/** Three apps in this process: HTTP on httpBase.., cluster on clusterBase... */
export async function startHttpCluster(
  httpBase: number,
  clusterBase: number,
  perNode: (id: string) => Partial<ClusterModuleOptions> & ClusterRouteOptions = () => ({}),
  extras: AppExtras = {},
) {
  const dataRoot = mkdtempSync(join(tmpdir(), 'catga-ops-'));
  const ids = ['a', 'b', 'c'];
  const members = ids.map((id, i) => `${id}=127.0.0.1:${clusterBase + i}`);
  const closed = new Set<string>();
  const nodes: OpsNode[] = await Promise.all(
    ids.map(async (id, i) => {
      const module = CatgaClusterModule.forRoot({ nodeId: id, members, dataDir: join(dataRoot, id), secret: 'ops-test-secret', logger: quiet, ...perNode(id) });
      const h = await startHttpApp(module, httpBase + i, extras);
      return {
        ...h,
        id,
        cluster: h.app.get(ClusterCoordinator),
        close: async () => {
          if (closed.has(id)) return;
          closed.add(id);
          await h.app.close();
        },
      };
    }),
  );
  await Promise.all(nodes.map((n) => n.cluster.waitForLeader({ timeout: 10_000 })));
  return {
    nodes,
    /** The leader once one is known and holds a valid lease (its own waitForLeader waits for that). */
    leader: async (): Promise<OpsNode> => {
      const running = nodes.filter((n) => !closed.has(n.id));
      const id = await running[0]!.cluster.waitForLeader({ timeout: 10_000 });
      const leader = nodes.find((n) => n.id === id)!;
      await leader.cluster.waitForLeader({ timeout: 10_000 });
      return leader;
    },
    close: async () => {
      await Promise.all(nodes.map((n) => n.close()));
      rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value (not undefined), or fails after `ms` naming what it waited for. */
export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
