/**
 * Where the etcd backend keeps things: every key under one prefix (default `catga/`), so several clusters or services
 * can share one etcd. Names supplied by users (store keys, lock and task names) are used as they are after their
 * area's prefix: etcd keys are bytes, and a range over `<area>/` never reaches another area.
 */
export class EtcdKeys {
  constructor(readonly prefix: string) {}

  /** Election candidates: one key per campaigning node, named by its session lease (etcd's election layout). */
  get electionPrefix(): string {
    return `${this.prefix}election/leader/`;
  }

  electionKey(leaseId: string): string {
    return `${this.electionPrefix}${leaseId}`;
  }

  /** App nodes present now, each under its session lease: `{ id, address, clientId, startedAt }`. */
  get nodesPrefix(): string {
    return `${this.prefix}nodes/`;
  }

  node(id: string): string {
    return `${this.nodesPrefix}${id}`;
  }

  get kvPrefix(): string {
    return `${this.prefix}kv/`;
  }

  kv(key: string): string {
    return `${this.kvPrefix}${key}`;
  }

  /** Waiters and the holder of lock `name`: one key per acquire, named by its lease; the oldest holds it. */
  lockPrefix(name: string): string {
    return `${this.prefix}locks/${encodeURIComponent(name)}/`;
  }

  get eventsPrefix(): string {
    return `${this.prefix}events/e/`;
  }

  /** One event, named by its publisher's client id and sequence number, so a retried publish is the same key. */
  event(clientId: string, seq: number): string {
    return `${this.eventsPrefix}${clientId}/${seq}`;
  }

  /** The newest event index dropped from retention. */
  get eventsEvicted(): string {
    return `${this.prefix}events/evicted`;
  }

  get tasksPrefix(): string {
    return `${this.prefix}tasks/`;
  }

  taskPrefix(task: string): string {
    return `${this.tasksPrefix}${encodeURIComponent(task)}/`;
  }

  /** Fire times are zero-padded so that the key order is the time order. */
  taskRun(task: string, fireTime: number): string {
    return `${this.taskPrefix(task)}${String(fireTime).padStart(16, '0')}`;
  }
}

/** etcd revisions and lease ids arrive as int64 strings; a revision past 2^53 would be misread, so it is refused. */
export function revisionOf(s: string | number): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`etcd revision ${s} is not a safe integer`);
  return n;
}
