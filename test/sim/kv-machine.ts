import type { KvInput, KvOutput } from './kv-model.js';

/** A command as carried in a log entry: who proposed it, so the proposer can match the result. */
export interface KvCommand {
  readonly client: number;
  readonly op: number;
  readonly input: KvInput;
}

interface Slot {
  value: string | null;
  version: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(c: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

/**
 * The simulator's replicated state machine: a KV map with per-key versions, the semantics the linearizability model
 * (kv-model.ts) checks against. Deterministic: the state is a function of the applied commands only.
 */
export class KvMachine {
  private readonly slots = new Map<string, Slot>();

  apply(input: KvInput): KvOutput {
    const cur = this.slots.get(input.key) ?? { value: null, version: 0 };
    switch (input.op) {
      case 'get':
        return { ok: true, value: cur.value, version: cur.version };
      case 'put':
        return this.write(input.key, input.value, cur.version + 1);
      case 'delete':
        this.slots.delete(input.key);
        return { ok: true, version: 0 };
      case 'cas':
        if (cur.version !== input.expectedVersion) return { ok: false, version: cur.version };
        return this.write(input.key, input.value, cur.version + 1);
    }
  }

  private write(key: string, value: string, version: number): KvOutput {
    this.slots.set(key, { value, version });
    return { ok: true, version };
  }

  snapshot(): Uint8Array {
    const rows = [...this.slots].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encoder.encode(JSON.stringify(rows));
  }

  static restore(data: Uint8Array): KvMachine {
    const m = new KvMachine();
    if (data.length === 0) return m;
    for (const [k, v] of JSON.parse(decoder.decode(data)) as [string, Slot][]) m.slots.set(k, v);
    return m;
  }
}
