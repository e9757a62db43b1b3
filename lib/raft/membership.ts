import type { NodeId } from './types.js';

/** A voter counts toward elections and commits; a learner only replicates (Raft thesis §4.2.1). */
export type MemberRole = 'voter' | 'learner';

export interface Member {
  readonly id: NodeId;
  /** Where peers dial it ('host:port'); opaque to the core, carried so every node can reach a member it never met. */
  readonly address: string;
  readonly role: MemberRole;
  /** A learner that stays one: automatic promotion passes it over. */
  readonly pinned?: boolean;
}

/** The cluster configuration: what travels in configuration entries and snapshots. */
export interface Membership {
  readonly members: readonly Member[];
}

export class MembershipError extends Error {
  override name = 'MembershipError';
}

/**
 * First byte of a configuration entry. 0xC1 is the one byte MessagePack never uses, and application entries are
 * MessagePack (or empty, the leader's no-op), so the core tells configuration entries apart without a second entry
 * type in the WAL and wire formats.
 */
export const MEMBERSHIP_ENTRY_TAG = 0xc1;

export function isMembershipEntry(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === MEMBERSHIP_ENTRY_TAG;
}

export function membershipOf(voters: readonly NodeId[], learners: readonly NodeId[] = []): Membership {
  return {
    members: [...voters.map((id): Member => ({ id, address: '', role: 'voter' })), ...learners.map((id): Member => ({ id, address: '', role: 'learner' }))],
  };
}

export function votersOf(m: Membership): NodeId[] {
  return m.members.filter((x) => x.role === 'voter').map((x) => x.id);
}

export function learnersOf(m: Membership): NodeId[] {
  return m.members.filter((x) => x.role === 'learner').map((x) => x.id);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Tag byte, then JSON `[[id, address, kind], …]` (kind 0 voter, 1 learner, 2 pinned learner): small, and readable in a
 * hex dump of the WAL.
 */
export function encodeMembership(m: Membership): Uint8Array {
  const json = encoder.encode(JSON.stringify(m.members.map((x) => [x.id, x.address, x.role === 'voter' ? 0 : x.pinned ? 2 : 1])));
  const out = new Uint8Array(json.length + 1);
  out[0] = MEMBERSHIP_ENTRY_TAG;
  out.set(json, 1);
  return out;
}

export function decodeMembership(data: Uint8Array): Membership {
  if (!isMembershipEntry(data)) throw new MembershipError('not a configuration entry');
  let rows: unknown;
  try {
    rows = JSON.parse(decoder.decode(data.subarray(1)));
  } catch {
    throw new MembershipError('configuration entry is not valid JSON');
  }
  if (!Array.isArray(rows)) throw new MembershipError('configuration entry is not a list of members');
  const members = rows.map((r: unknown): Member => {
    if (!Array.isArray(r) || typeof r[0] !== 'string' || r[0] === '' || typeof r[1] !== 'string' || ![0, 1, 2].includes(r[2] as number)) {
      throw new MembershipError(`configuration entry has a malformed member: ${JSON.stringify(r)}`);
    }
    return r[2] === 0 ? { id: r[0], address: r[1], role: 'voter' } : { id: r[0], address: r[1], role: 'learner', ...(r[2] === 2 && { pinned: true }) };
  });
  const problem = invalidMembership({ members });
  if (problem) throw new MembershipError(`configuration entry: ${problem}`);
  return { members };
}

/** Why `m` cannot be a configuration, or null: ids are distinct. (An empty one is a node that has not joined yet.) */
export function invalidMembership(m: Membership): string | null {
  const ids = new Set<NodeId>();
  for (const x of m.members) {
    if (ids.has(x.id)) return `member ${x.id} appears twice`;
    ids.add(x.id);
  }
  return null;
}

/**
 * Why going from `from` to `to` is not a single-server change (thesis §4.1), or null. At most one voter is added or
 * removed, so any majority of the old voters overlaps any majority of the new ones and no moment has two leaders;
 * learners count toward no majority, so any number of them may come and go in the same step.
 */
export function invalidChange(from: Membership, to: Membership): string | null {
  const problem = invalidMembership(to);
  if (problem) return problem;
  const before = new Set(votersOf(from));
  const after = new Set(votersOf(to));
  if (after.size === 0) return 'a configuration needs at least one voter';
  let changed = 0;
  for (const v of after) if (!before.has(v)) changed++;
  for (const v of before) if (!after.has(v)) changed++;
  if (changed > 1) return `changes ${changed} voters at once; add, remove, promote or demote one at a time`;
  return null;
}

export function sameMembership(a: Membership, b: Membership): boolean {
  if (a.members.length !== b.members.length) return false;
  return a.members.every((x, i) => {
    const y = b.members[i]!;
    return x.id === y.id && x.address === y.address && x.role === y.role && !x.pinned === !y.pinned;
  });
}
