/**
 * A storage service guarded by fencing tokens, as in Kleppmann's "How to do distributed locking": per lock name it
 * keeps the highest token it has seen and refuses any request carrying a lower one — reads too, so that a holder
 * whose lease ran out while it stalled between reading and writing cannot overwrite what a later holder did. It
 * holds one counter per name, and logs every request in the order it handled them: the order the checker judges.
 */
export interface ResourceRequest {
  /** Position in the resource's own order. */
  readonly seq: number;
  readonly name: string;
  readonly token: number;
  readonly holder: string;
  readonly op: 'read' | 'write';
  /** The value read, or the value the request wanted to write. */
  readonly value: number;
  readonly accepted: boolean;
}

export class FencedResource {
  readonly log: ResourceRequest[] = [];
  private readonly highest = new Map<string, number>();
  private readonly values = new Map<string, number>();

  /** The counter of `name`, or null when `token` is lower than one already seen. */
  read(name: string, token: number, holder: string): number | null {
    const accepted = this.admit(name, token);
    const value = this.values.get(name) ?? 0;
    this.log.push({ seq: this.log.length, name, token, holder, op: 'read', value, accepted });
    return accepted ? value : null;
  }

  /** Sets the counter of `name` unless `token` is lower than one already seen; false when refused. */
  write(name: string, token: number, holder: string, value: number): boolean {
    const accepted = this.admit(name, token);
    if (accepted) this.values.set(name, value);
    this.log.push({ seq: this.log.length, name, token, holder, op: 'write', value, accepted });
    return accepted;
  }

  get rejections(): number {
    return this.log.filter((r) => !r.accepted).length;
  }

  private admit(name: string, token: number): boolean {
    if (token < (this.highest.get(name) ?? 0)) return false;
    this.highest.set(name, token);
    return true;
  }
}
