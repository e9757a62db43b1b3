import type { ApplyContext, BulkStateModule, RowCapture } from './state-module.js';

export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: unknown }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'cas'; readonly key: string; readonly expectedVersion: number; readonly value: unknown };

/** `version` counts writes since the key was created (1, 2, …; 0 = absent); `revision` is the log index of the write. */
export interface KvEntry {
  readonly value: unknown;
  readonly version: number;
  readonly revision: number;
}

export interface KvWriteResult {
  /** False only for a cas whose expected version did not match. */
  readonly ok: boolean;
  /** The key's version after the command (0 when absent). */
  readonly version: number;
  readonly revision: number;
}

/** The replicated key-value map. */
export class KvModule implements BulkStateModule<KvCommand, KvWriteResult> {
  readonly name = 'kv';
  private entries = new Map<string, KvEntry>();

  get(key: string): KvEntry | undefined {
    return this.entries.get(key);
  }

  get size(): number {
    return this.entries.size;
  }

  apply(cmd: KvCommand, ctx: ApplyContext): KvWriteResult {
    // Commands come from the log, written by any member: check the shape (a throw here becomes an ApplyError).
    if (typeof cmd !== 'object' || cmd === null || typeof cmd.key !== 'string') throw new TypeError('a kv command needs a string key');
    if (cmd.op === 'cas' && typeof cmd.expectedVersion !== 'number') throw new TypeError('cas needs a numeric expectedVersion');
    if (cmd.op !== 'put' && cmd.op !== 'delete' && cmd.op !== 'cas') throw new TypeError(`unknown kv op ${JSON.stringify((cmd as { op?: unknown }).op)}`);
    const cur = this.entries.get(cmd.key);
    const version = cur?.version ?? 0;
    switch (cmd.op) {
      case 'put':
        return this.write(cmd.key, cmd.value, version + 1, ctx.index);
      case 'delete':
        this.entries.delete(cmd.key);
        return { ok: true, version: 0, revision: ctx.index };
      case 'cas':
        if (version !== cmd.expectedVersion) return { ok: false, version, revision: cur?.revision ?? 0 };
        return this.write(cmd.key, cmd.value, version + 1, ctx.index);
    }
  }

  private write(key: string, value: unknown, version: number, revision: number): KvWriteResult {
    this.entries.set(key, { value, version, revision });
    return { ok: true, version, revision };
  }

  snapshot(): unknown {
    return null;
  }

  /** Writes replace an entry object rather than change it, so these rows stay the state of this moment. */
  rows(): unknown[] {
    return [...this.entries];
  }

  /**
   * The rows of this moment without a pair per row: the keys and the entries in two flat arrays (about 3.5 ms at
   * 200k keys, against ~45 ms and the garbage collection after for rows()). Entries are never changed in place, so
   * the rows read from them later are still those of this moment; a slice's pairs are built when it is encoded.
   * (Reading the live map by key instead costs ~0.5 µs a lookup at that size, more than the encoding.)
   */
  capture(): RowCapture {
    const keys = Array.from(this.entries.keys());
    const values = Array.from(this.entries.values());
    return {
      length: keys.length,
      slice: (from, to) => {
        const rows: unknown[] = [];
        for (let i = from; i < to && i < keys.length; i++) rows.push([keys[i], values[i]]);
        return rows;
      },
      release: () => {
        keys.length = 0;
        values.length = 0;
      },
    };
  }

  restore(_image: unknown, rows: unknown[] = []): void {
    this.entries = new Map(rows as [string, KvEntry][]);
  }
}
