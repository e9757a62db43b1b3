import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { NodeId } from '../../raft/index.js';
import type { Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { callOptions } from './etcd-client.js';
import type { EtcdKeys } from './keys.js';

/** An app node present in the cluster: it holds a session lease, and its registration key lives as long as the lease. */
export interface RegisteredNode {
  readonly id: NodeId;
  /** host:port where it takes forwarded requests. */
  readonly address: string;
  readonly clientId: string;
  readonly leaseId: string;
  readonly startedAt: number;
}

interface NodeValue {
  readonly id: string;
  readonly address: string;
  readonly clientId: string;
  readonly startedAt: number;
}

export interface EtcdNodesDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  readonly self: { readonly id: NodeId; readonly address: string; readonly clientId: string };
  readonly requestTimeoutMs: number;
  readonly timers: Timers;
  readonly logger: ClusterLogger;
  /** How long another process's registration under this node id may take to expire (its lease TTL), in ms. */
  readonly takeoverWaitMs: number;
  /** Called whenever the set of present nodes changes. */
  readonly onChange: (nodes: readonly RegisteredNode[]) => void;
}

/**
 * The app nodes present now, kept from a range read and a watch of `<prefix>nodes/`, and this node's own registration.
 * On etcd there is no membership to change: a node is present while its session lease lives.
 */
export class EtcdNodes {
  private readonly present = new Map<NodeId, RegisteredNode>();
  private watcher: Watcher | null = null;
  private closed = false;
  private readonly startedAt = Date.now();

  constructor(private readonly d: EtcdNodesDeps) {}

  list(): readonly RegisteredNode[] {
    return [...this.present.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Registers this node under `leaseId` (each new session lease registers again). Another live process with the same
   * node id is refused with a clear error once its registration outlived `takeoverWaitMs`: a restart after a crash
   * waits for the old lease to expire, two processes with one id are an operator error.
   */
  async register(leaseId: string): Promise<void> {
    const { client, keys, self } = this.d;
    const key = keys.node(self.id);
    const value = JSON.stringify({ id: self.id, address: self.address, clientId: self.clientId, startedAt: this.startedAt } satisfies NodeValue);
    const deadline = Date.now() + this.d.takeoverWaitMs;
    for (;;) {
      const r = await client
        .if(key, 'Create', '==', 0)
        .then(client.put(key).value(value).lease(leaseId))
        .else(client.get(key))
        .options(callOptions(this.d.requestTimeoutMs))
        .commit();
      if (r.succeeded) return;
      const kv = r.responses[0]?.response_range?.kvs[0];
      const other = kv ? parseNode(kv) : null;
      if (!kv || other?.clientId === self.clientId) {
        // Our own key from the previous session (or gone meanwhile): write it under the new lease.
        await client.put(key).value(value).lease(leaseId).options(callOptions(this.d.requestTimeoutMs)).exec();
        return;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `node id ${self.id} is already present in etcd (${key}, lease ${kv.lease}, process ${other?.clientId ?? 'unknown'} at ` +
            `${other?.address ?? 'unknown'}): another process runs with this nodeId; stop it or give this node another id`,
        );
      }
      await new Promise<void>((r) => this.d.timers.setTimeout(r, 250));
    }
  }

  /** Reads the present nodes, then follows changes. */
  async open(): Promise<void> {
    const { client, keys } = this.d;
    const all = await client.getAll().prefix(keys.nodesPrefix).options(callOptions(this.d.requestTimeoutMs)).exec();
    this.present.clear();
    for (const kv of all.kvs) this.apply(kv, 'put');
    this.d.onChange(this.list());
    if (this.closed) return;
    const watcher = await client.watch().prefix(keys.nodesPrefix).startRevision(String(Number(all.header.revision) + 1)).create();
    if (this.closed) return void watcher.cancel().catch(() => undefined);
    this.watcher = watcher;
    watcher.on('put', (kv) => this.changed(kv, 'put'));
    watcher.on('delete', (kv) => this.changed(kv, 'delete'));
    // etcd3 resumes a broken watch from the last revision it saw; only a compacted one ends up here.
    watcher.on('error', (e) => {
      this.d.logger.warn(`etcd node registry watch failed (${e.message}); reading it again`);
      void this.reopen();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
  }

  private async reopen(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
    for (let delay = 100; !this.closed; delay = Math.min(2000, delay * 2)) {
      try {
        return await this.open();
      } catch {
        await new Promise<void>((r) => this.d.timers.setTimeout(r, delay));
      }
    }
  }

  private changed(kv: IKeyValue, op: 'put' | 'delete'): void {
    this.apply(kv, op);
    this.d.onChange(this.list());
  }

  private apply(kv: IKeyValue, op: 'put' | 'delete'): void {
    const id = kv.key.toString().slice(this.d.keys.nodesPrefix.length);
    if (op === 'delete') return void this.present.delete(id);
    const v = parseNode(kv);
    if (v) this.present.set(id, { id, address: v.address, clientId: v.clientId, leaseId: String(kv.lease), startedAt: v.startedAt });
  }
}

function parseNode(kv: IKeyValue): NodeValue | null {
  try {
    const v = JSON.parse(kv.value.toString()) as Partial<NodeValue>;
    return typeof v.address === 'string' && typeof v.clientId === 'string' ? (v as NodeValue) : null;
  } catch {
    return null;
  }
}
