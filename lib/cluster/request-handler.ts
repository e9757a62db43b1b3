import type { NodeId } from '../raft/index.js';
import { NotLeaderException } from './errors.js';
import type { RaftRuntime } from './raft-runtime.js';
import { decodeRequest, encodeReply, toWireError, type MemberRequest, type SnapshotRequest } from './rpc.js';
import { encodePayload } from './state/entry-codec.js';
import { ApplyError } from './state/cluster-state-machine.js';

/** Serves requests on one channel; whatever it returns (or throws) goes back to the caller. */
export type AppRequestHandler = (body: unknown, from: NodeId) => Promise<unknown>;

/**
 * Serves peers' requests on this node: proposals forwarded by followers (stamped with this leader's clock, which is
 * the one replicated time is measured on), leadership transfer requests, and channels registered by higher layers.
 */
export class RequestRouter {
  private readonly channels = new Map<string, AppRequestHandler>();
  /** Membership requests; they may arrive at a follower (a joining node only knows seeds), which passes them on. */
  membership: ((req: MemberRequest, from: NodeId) => Promise<unknown>) | null = null;
  /** Snapshot exports (SnapshotExporter), served on any member: a follower exports at a ReadIndex point too. */
  snapshots: ((req: SnapshotRequest, from: NodeId) => Promise<unknown>) | null = null;

  constructor(
    private readonly runtime: RaftRuntime,
    private readonly wallClock: () => number,
  ) {}

  register(channel: string, handler: AppRequestHandler): void {
    if (this.channels.has(channel)) throw new Error(`request channel "${channel}" is already registered`);
    this.channels.set(channel, handler);
  }

  readonly handle = async (from: NodeId, payload: Uint8Array): Promise<Uint8Array> => {
    try {
      return encodeReply({ ok: true, value: await this.dispatch(from, payload) });
    } catch (e) {
      return encodeReply({ ok: false, error: toWireError(e) });
    }
  };

  private async dispatch(from: NodeId, payload: Uint8Array): Promise<unknown> {
    const req = decodeRequest(payload);
    if (req.kind === 'app') {
      const h = this.channels.get(req.channel);
      if (!h) throw new Error(`no handler for request channel "${req.channel}" on ${this.runtime.nodeId}`);
      return h(req.body, from);
    }
    if (req.kind === 'member') {
      if (!this.membership) throw new Error(`${this.runtime.nodeId} takes no membership requests`);
      return this.membership(req, from);
    }
    if (req.kind === 'snapshot') {
      if (!this.snapshots) throw new Error(`${this.runtime.nodeId} does not export snapshots`);
      return this.snapshots(req, from);
    }
    if (!this.runtime.leadership.isLeader) throw new NotLeaderException(this.runtime.leadership.leaderId);
    if (req.kind === 'transfer') return this.runtime.transferLeadership(req.to ?? undefined);
    const result = await this.runtime.propose(
      encodePayload({ module: req.module, command: req.command, time: this.wallClock(), session: req.session }),
      positiveOrUndefined(req.timeoutMs),
    );
    if (result instanceof ApplyError) throw new Error(result.message);
    return result;
  }
}

/** A caller's remaining time as it came over the wire; anything but a positive number means "the default". */
function positiveOrUndefined(ms: unknown): number | undefined {
  return typeof ms === 'number' && ms > 0 && Number.isFinite(ms) ? ms : undefined;
}
