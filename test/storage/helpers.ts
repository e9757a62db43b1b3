import { membershipOf } from '../../lib/raft/membership.js';
import { Prng } from '../support/prng.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Entry, HardState, Snapshot } from '../../lib/raft/types.js';
import type { StorageLogger } from '../../lib/storage/file-storage.js';
import type { PersistBatch } from '../../lib/storage/raft-storage.js';

/** Entry with recognisable data: "<index>@<term>" padded to `size` bytes. */
export function entry(index: number, term: number, size = 0): Entry {
  const text = `${index}@${term}`;
  const data = new Uint8Array(Math.max(size, text.length));
  data.set(Buffer.from(text));
  return { index, term, data };
}

export function entries(from: number, to: number, term: number, size = 0): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

export function batch(parts: Partial<PersistBatch>): PersistBatch {
  return { snapshot: null, entries: [], hardState: null, ...parts };
}

export function hs(term: number, vote: string, commit: number): HardState {
  return { term, vote, commit };
}

export function snapshot(index: number, term: number, text = `state@${index}`): Snapshot {
  return { meta: { index, term, membership: membershipOf(['n1', 'n2', 'n3']) }, data: Buffer.from(text) };
}

/** Plain objects for toEqual (Buffer vs Uint8Array do not compare equal). */
export function plain(list: readonly Entry[]): { index: number; term: number; data: string }[] {
  return list.map((e) => ({ index: e.index, term: e.term, data: Buffer.from(e.data).toString('hex') }));
}

export class MemoryLogger implements StorageLogger {
  readonly warnings: string[] = [];
  readonly infos: string[] = [];
  warn(msg: string): void {
    this.warnings.push(msg);
  }
  log(msg: string): void {
    this.infos.push(msg);
  }
}

/** A fresh directory under the OS temp dir, removed by `cleanup`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catga-storage-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic PRNG for crash tests (the simulator's). */
export function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}
