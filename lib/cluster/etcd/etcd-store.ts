/**
 * `cluster.store` on etcd: every key under `<prefix>kv/`, values msgpack-encoded as in the embedded log. etcd's own
 * key version is the store's version (writes since creation, reset to 0 by a delete), its mod revision the revision.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { ClusterStore } from '../backend.js';
import type { CasResult, ReadConsistency, StoreEntry, WriteResult } from '../cluster-store.js';
import { pack, unpack } from '../msgpack.js';
import { callOptions, toClusterError } from './etcd-client.js';
import { revisionOf, type EtcdKeys } from './keys.js';

export interface EtcdStoreDeps {
  readonly client: Etcd3;
  readonly keys: EtcdKeys;
  /** Deadline of every etcd call. */
  readonly requestTimeoutMs: number;
}

export class EtcdStore implements ClusterStore {
  constructor(private readonly d: EtcdStoreDeps) {}

  /** 'local' reads the etcd member the client talks to (serializable: may lag); the default is linearizable. */
  async get<T = unknown>(key: string, opts: { consistency?: ReadConsistency } = {}): Promise<StoreEntry<T> | undefined> {
    checkKey(key);
    try {
      const res = await this.d.client.get(this.d.keys.kv(key)).serializable(opts.consistency === 'local').options(this.deadline()).exec();
      const kv = res.kvs[0];
      // unpack builds new objects on every call: the caller gets its own copy.
      return kv ? { value: unpack(kv.value) as T, version: revisionOf(kv.version), revision: revisionOf(kv.mod_revision) } : undefined;
    } catch (e) {
      throw toClusterError(e, `store get "${key}"`);
    }
  }

  async put(key: string, value: unknown): Promise<WriteResult> {
    checkKey(key);
    const bytes = encode(value);
    try {
      // prev_kv comes from the same revision as the put: the new version is exactly one more (1 for a new key).
      const prev = await this.d.client.put(this.d.keys.kv(key)).value(bytes).options(this.deadline()).getPrevious();
      const version = prev.version === undefined || prev.version === null ? 1 : revisionOf(prev.version) + 1;
      return { version, revision: revisionOf(prev.header.revision) };
    } catch (e) {
      throw toClusterError(e, `store put "${key}"`);
    }
  }

  async delete(key: string): Promise<WriteResult> {
    checkKey(key);
    try {
      const res = await this.d.client.delete().key(this.d.keys.kv(key)).options(this.deadline()).exec();
      return { version: 0, revision: revisionOf(res.header.revision) };
    } catch (e) {
      throw toClusterError(e, `store delete "${key}"`);
    }
  }

  /** Writes `value` only if the key's version is `expectedVersion` (0: only if absent: etcd's version of a missing key). */
  async cas(key: string, expectedVersion: number, value: unknown): Promise<CasResult> {
    if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
      throw new TypeError(`cas expectedVersion must be a whole number >= 0 (0 = absent), got ${expectedVersion}`);
    }
    checkKey(key);
    const bytes = encode(value);
    const k = this.d.keys.kv(key);
    const { client } = this.d;
    try {
      const res = await client.if(k, 'Version', '==', expectedVersion).then(client.put(k).value(bytes)).else(client.get(k)).options(this.deadline()).commit();
      if (res.succeeded) return { ok: true, version: expectedVersion + 1, revision: revisionOf(res.header.revision) };
      const cur: IKeyValue | undefined = res.responses[0]?.response_range?.kvs[0];
      return cur ? { ok: false, version: revisionOf(cur.version), revision: revisionOf(cur.mod_revision) } : { ok: false, version: 0, revision: 0 };
    } catch (e) {
      throw toClusterError(e, `store cas "${key}"`);
    }
  }

  private deadline(): { deadline: Date } {
    return callOptions(this.d.requestTimeoutMs);
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('store keys are non-empty strings');
}

function encode(value: unknown): Buffer {
  return pack(value);
}
