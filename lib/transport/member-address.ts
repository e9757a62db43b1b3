import type { NodeId } from '../raft/index.js';

/** Where a member listens. */
export interface MemberAddress {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
  /** In a static member list: 'learner' starts the member as a non-voter. Default 'voter'. */
  readonly role?: 'voter' | 'learner';
}

/**
 * A member as configured: `'id=host:port'` (IPv6 as `'id=[::1]:7001'`), `{ id, address: 'host:port', role? }`, or
 * parsed. A role only matters in a cluster's first member list: `role: 'learner'` starts that member as a non-voter.
 */
export type MemberInput = string | { readonly id: NodeId; readonly address: string; readonly role?: 'voter' | 'learner' } | MemberAddress;

const STRING_FORMAT = '"id=host:port"';
const OBJECT_FORMAT = '{ id, address: "host:port" }';

export class MemberAddressError extends Error {
  override name = 'MemberAddressError';
}

/** Parses and checks a members list; errors name the entry (`members[2]`), what was expected and what was given. */
export function parseMembers(members: readonly MemberInput[], field = 'members'): MemberAddress[] {
  const out: MemberAddress[] = [];
  const seen = new Map<NodeId, number>();
  members.forEach((entry, i) => {
    const m = parseMember(entry, `${field}[${i}]`);
    const first = seen.get(m.id);
    if (first !== undefined) throw new MemberAddressError(`${field}[${i}]: duplicate id ${JSON.stringify(m.id)} (also ${field}[${first}])`);
    seen.set(m.id, i);
    out.push(m);
  });
  return out;
}

export function parseMember(entry: MemberInput, where = 'member'): MemberAddress {
  if (typeof entry === 'string') {
    const eq = entry.indexOf('=');
    if (eq < 0) throw bad(where, STRING_FORMAT, entry);
    const id = checkId(entry.slice(0, eq), where, STRING_FORMAT, entry);
    const hp = parseHostPort(entry.slice(eq + 1));
    if (hp === null) throw bad(where, STRING_FORMAT, entry);
    return { id, ...hp };
  }
  if (typeof entry !== 'object' || entry === null) throw bad(where, `${STRING_FORMAT} or ${OBJECT_FORMAT}`, entry);
  const role = entry.role;
  if (role !== undefined && role !== 'voter' && role !== 'learner') throw bad(where, `role 'voter' or 'learner'`, entry);
  if ('address' in entry) {
    const id = checkId(entry.id, where, OBJECT_FORMAT, entry);
    const hp = typeof entry.address === 'string' ? parseHostPort(entry.address) : null;
    if (hp === null) throw bad(where, OBJECT_FORMAT, entry);
    return { id, ...hp, ...(role && { role }) };
  }
  const format = '{ id, host, port }';
  const id = checkId(entry.id, where, format, entry);
  if (typeof entry.host !== 'string' || entry.host === '' || !validPort(entry.port)) throw bad(where, format, entry);
  return { id, host: entry.host, port: entry.port, ...(role && { role }) };
}

function checkId(id: unknown, where: string, format: string, entry: unknown): NodeId {
  if (typeof id !== 'string' || id.trim() !== id || id === '' || id.includes('=')) throw bad(where, format, entry);
  if (Buffer.byteLength(id, 'utf8') > 255) throw new MemberAddressError(`${where}: node id longer than 255 bytes`);
  return id;
}

function parseHostPort(s: string): { host: string; port: number } | null {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') return null;
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (!host.includes(':')) return null;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return null;
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    // An unbracketed IPv6 address is ambiguous ("::1:7001"): require brackets.
    if (host.includes(':')) return null;
  }
  if (host === '' || /\s/.test(host) || !/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  return validPort(port) ? { host, port } : null;
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

function bad(where: string, format: string, got: unknown): MemberAddressError {
  return new MemberAddressError(`${where}: expected ${format}, got ${describe(got)}`);
}

function describe(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** `host:port`, with an IPv6 host in brackets: how a member's address is written in lists and handshakes. */
export function formatAddress(m: { readonly host: string; readonly port: number }): string {
  return m.host.includes(':') ? `[${m.host}]:${m.port}` : `${m.host}:${m.port}`;
}
