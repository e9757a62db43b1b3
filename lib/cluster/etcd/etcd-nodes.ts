import type { Etcd3, IEvent, IKeyValue } from 'etcd3';
import type { NodeId } from '../../raft/index.js';
import type { Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { callOptions } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';
import { WatchedPrefix } from './watched-prefix.js';

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
  private readonly watched: WatchedPrefix;
  private readonly startedAt = Date.now();

  constructor(private readonly d: EtcdNodesDeps) {
    this.watched = new WatchedPrefix({
      client: d.client,
      prefix: d.keys.nodesPrefix,
      what: 'app nodes',
      timers: d.timers,
      logger: d.logger,
      requestTimeoutMs: d.requestTimeoutMs,
      sink: { read: () => this.read(), apply: (events) => this.apply(events) },
    });
  }

  list(): readonly RegisteredNode[] {
    return [...this.present.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Fails when another live process holds this node id's registration past `takeoverWaitMs` (its lease TTL, twice):
   * a restart after a crash waits for the old registration to expire; two processes with one id are an operator
   * error, reported at startup rather than as endless retries later.
   */
  async checkUnclaimed(): Promise<void> {
    const { client, keys, self } = this.d;
    const deadline = Date.now() + this.d.takeoverWaitMs;
    for (;;) {
      const kv = (await client.get(keys.node(self.id)).options(callOptions(this.d.requestTimeoutMs)).exec()).kvs[0];
      const other = kv ? parseNode(kv) : null;
      if (!kv || other?.clientId === self.clientId) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `node id ${self.id} is already present in etcd (${keys.node(self.id)}, lease ${kv.lease}, process ${other?.clientId ?? 'unknown'} at ` +
            `${other?.address ?? 'unknown'}): another process runs with this nodeId; stop it or give this node another id`,
        );
      }
      await new Promise<void>((r) => this.d.timers.setTimeout(r, 250));
    }
  }

  /**
   * Registers this node under `leaseId` (each new session lease registers again). The key is written only when it is
   * absent or still ours (same process, compared on its mod revision): a process that took the id meanwhile keeps it,
   * and this one says so at error level on every try, since it cannot lead until that process is gone.
   */
  async register(leaseId: string): Promise<void> {
    const { client, keys, self } = this.d;
    const key = keys.node(self.id);
    const value = JSON.stringify({ id: self.id, address: self.address, clientId: self.clientId, startedAt: this.startedAt } satisfies NodeValue);
    for (;;) {
      const r = await client
        .if(key, 'Create', '==', 0)
        .then(client.put(key).value(value).lease(leaseId))
        .else(client.get(key))
        .options(callOptions(this.d.requestTimeoutMs))
        .commit();
      if (r.succeeded) return;
      const kv = r.responses[0]?.response_range?.kvs[0];
      if (!kv) continue; // gone meanwhile: create it
      const other = parseNode(kv);
      if (other?.clientId !== self.clientId) {
        const msg = `node id ${self.id} was taken by process ${other?.clientId ?? 'unknown'} at ${other?.address ?? 'unknown'}: this node cannot lead until it is gone`;
        this.d.logger.error(msg);
        throw new Error(msg);
      }
      // Our own key from the previous session: move it to the new lease, unless it changed hands since it was read.
      const moved = await client
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(client.put(key).value(value).lease(leaseId))
        .options(callOptions(this.d.requestTimeoutMs))
        .commit();
      if (moved.succeeded) return;
    }
  }

  /** Reads the present nodes, then follows changes (re-reading after a disconnect or a compaction). */
  open(): Promise<void> {
    return this.watched.start();
  }

  close(): Promise<void> {
    return this.watched.stop();
  }

  private async read(): Promise<number> {
    const all = await this.d.client.getAll().prefix(this.d.keys.nodesPrefix).options(callOptions(this.d.requestTimeoutMs)).exec();
    this.present.clear();
    for (const kv of all.kvs) this.set(kv);
    this.d.onChange(this.list());
    return revisionOf(all.header.revision);
  }

  private apply(events: readonly IEvent[]): void {
    for (const e of events) {
      if (e.type === 'Delete') this.present.delete(e.kv.key.toString().slice(this.d.keys.nodesPrefix.length));
      else this.set(e.kv);
    }
    this.d.onChange(this.list());
  }

  private set(kv: IKeyValue): void {
    const id = kv.key.toString().slice(this.d.keys.nodesPrefix.length);
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
