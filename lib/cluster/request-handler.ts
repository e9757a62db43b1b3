import type { NodeId } from '../raft/index.js';
import { NotLeaderException } from './errors.js';
import type { RaftRuntime } from './raft-runtime.js';
import { decodeRequest, encodeReply, toWireError } from './rpc.js';
import { encodePayload } from './state/entry-codec.js';
import { ApplyError } from './state/cluster-state-machine.js';

/**
 * Serves peers' requests on this node: proposals forwarded by followers (stamped with this leader's clock, which is
 * the one replicated time is measured on) and leadership transfer requests.
 */
export function createRequestHandler(runtime: RaftRuntime, wallClock: () => number) {
  return async (_from: NodeId, payload: Uint8Array): Promise<Uint8Array> => {
    try {
      const req = decodeRequest(payload);
      if (!runtime.leadership.isLeader) throw new NotLeaderException(runtime.leadership.leaderId);
      if (req.kind === 'propose') {
        const result = await runtime.propose(encodePayload({ module: req.module, command: req.command, time: wallClock(), session: req.session }));
        if (result instanceof ApplyError) throw new Error(result.message);
        return encodeReply({ ok: true, value: result });
      }
      return encodeReply({ ok: true, value: runtime.transferLeadership(req.to ?? undefined) });
    } catch (e) {
      return encodeReply({ ok: false, error: toWireError(e) });
    }
  };
}
