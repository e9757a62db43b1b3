/**
 * A chaos client of the replicated store: one operation at a time against its own node over IPC — linearizable
 * gets, puts, cas (mostly on the version it last saw) and the odd delete on a few shared keys — recorded with the
 * test process's clock around each request.
 */
import type { CasResult, StoreEntry, WriteResult } from '../../lib/cluster/cluster-store.js';
import type { KvInput, KvOutput } from '../sim/kv-model.js';
import { sleep, type NodeProcess } from '../support/process-cluster.js';
import type { ClientBase } from './history.js';

/** Longer than the node's request timeout (5 s) plus the longest pause the nemesis causes. */
export const KV_REQUEST_TIMEOUT_MS = 12_000;

export interface KvClientOptions extends ClientBase {
  readonly node: NodeProcess;
  readonly keys: readonly string[];
}

export async function runKvClient(o: KvClientOptions): Promise<void> {
  const lastVersion = new Map<string, number>();
  for (let seq = 0; !o.done(); seq++) {
    // Draw everything first, so one operation's outcome does not shift the next one's draws.
    const roll = o.rng.next();
    const key = o.rng.pick(o.keys);
    const casOff = o.rng.chance(0.2) ? o.rng.int(-1, 2) : 0;
    if (!o.node.running) {
      await sleep(50);
      continue;
    }
    const value = `c${o.id}-${seq}`;
    const input: KvInput =
      roll < 0.45
        ? { op: 'get', key }
        : roll < 0.75
          ? { op: 'put', key, value }
          : roll < 0.97
            ? { op: 'cas', key, expectedVersion: Math.max(0, (lastVersion.get(key) ?? 0) + casOff), value }
            : { op: 'delete', key };
    const output = await performKvOp(o, input);
    if (!('unknown' in output)) lastVersion.set(key, output.version);
    // Back off a little after an error: a failing request can return at once (no leader known).
    if ('unknown' in output) await sleep(20);
  }
}

/** Sends one operation to `o.node`, records it in the history and returns what the client learned. */
export async function performKvOp(o: Pick<KvClientOptions, 'id' | 'node' | 'history'>, input: KvInput): Promise<KvOutput> {
  const call = o.history.now();
  let output: KvOutput;
  try {
    output = await request(o.node, input);
  } catch (e) {
    o.history.error(input.op, e);
    // A failed read changed nothing; any other failure may still have applied (or may apply later).
    o.history.count(input.op, input.op === 'get' ? 'fail' : 'unknown');
    output = { unknown: true };
  }
  const ret = o.history.now();
  if (!('unknown' in output)) o.history.count(input.op, output.ok ? 'ok' : 'fail');
  o.history.kv.push({ clientId: o.id, input, call, output, return: ret });
  return output;
}

async function request(node: NodeProcess, input: KvInput): Promise<KvOutput> {
  const t = KV_REQUEST_TIMEOUT_MS;
  switch (input.op) {
    case 'get': {
      const e = await node.request<StoreEntry | null>({ op: 'get', key: input.key, consistency: 'linearizable' }, t);
      if (e === null) return { ok: true, value: null, version: 0 };
      // Only strings are written: anything else is kept visibly, for the checker to flag.
      const value = typeof e.value === 'string' ? e.value : `not a string: ${JSON.stringify(e.value)}`;
      return { ok: true, value, version: e.version };
    }
    case 'put': {
      const r = await node.request<WriteResult>({ op: 'put', key: input.key, value: input.value }, t);
      return { ok: true, version: r.version };
    }
    case 'cas': {
      const r = await node.request<CasResult>({ op: 'cas', key: input.key, expectedVersion: input.expectedVersion, value: input.value }, t);
      return { ok: r.ok, version: r.version };
    }
    case 'delete':
      await node.request<WriteResult>({ op: 'delete', key: input.key }, t);
      return { ok: true, version: 0 };
  }
}
