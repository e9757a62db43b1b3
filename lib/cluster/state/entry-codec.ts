import { Packr } from 'msgpackr';
import type { SessionId } from './session-table.js';

/** A log entry's payload: which module, its command, the proposer's clock, and optionally a client session. */
export interface EntryPayload {
  readonly module: string;
  readonly command: unknown;
  readonly time: number;
  readonly session?: SessionId;
}

// Records off: plain maps and arrays decode the same on every node and every version of this library.
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodePayload(p: EntryPayload): Uint8Array {
  const s = p.session;
  return packr.pack(s ? [p.module, p.command, p.time, s.client, s.seq] : [p.module, p.command, p.time]);
}

export function decodePayload(data: Uint8Array): EntryPayload {
  const v = packr.unpack(data) as unknown[];
  if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[2] !== 'number') {
    throw new Error('entry payload is not [module, command, time, client?, seq?]');
  }
  const session = typeof v[3] === 'string' && typeof v[4] === 'number' ? { client: v[3], seq: v[4] } : undefined;
  return { module: v[0], command: v[1], time: v[2], session };
}

export function encodeImage(image: unknown): Uint8Array {
  return packr.pack(image);
}

export function decodeImage(data: Uint8Array): unknown {
  return packr.unpack(data);
}
