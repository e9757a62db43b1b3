import { decodeRequest } from '../../lib/cluster/rpc.js';
import { decodeCall, decodeReply } from '../../lib/transport/call-frames.js';
import { FrameError, HandshakeError } from '../../lib/transport/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameKind, FrameReader, PRE_AUTH_MAX_FRAME_BYTES, kindName } from '../../lib/transport/frame.js';
import { ListenerHandshake } from '../../lib/transport/handshake.js';
import { decodeMessage } from '../../lib/transport/raft-codec.js';

/** What the node must do with the bytes of one fuzz connection, worked out with the library's own decoders. */
export type Expectation =
  /** The node must close the connection (and log why). */
  | { readonly kind: 'drop'; readonly reason: string }
  /** Nothing the node read is refusable (a frame still incomplete, a valid HELLO awaiting AUTH, …): it stays open. */
  | { readonly kind: 'open'; readonly calls: number }
  /**
   * Well-formed input that would reach the Raft core or the request router as if from a real member. Raft does not
   * survive a lying member (no consensus protocol without Byzantine tolerance does), so such bytes are never sent.
   */
  | { readonly kind: 'unsafe'; readonly what: string };

export interface Identity {
  /** The member the connection is made to. */
  readonly target: string;
  readonly members: readonly string[];
  readonly secret: string;
}

/**
 * Reads `bytes` as the target's listener would before authentication: frames up to 4 KiB, each handed to a real
 * ListenerHandshake with the target's policy (a known member with a smaller id may dial, a non-member may try). The nonce differs from the
 * node's, which changes nothing: no fuzz input carries a MAC made for either.
 */
export function expectBeforeAuth(id: Identity, bytes: Buffer): Expectation {
  // The static list as createCluster canonicalizes it (voter ids, sorted); a non-member may go on to authenticate
  // (a node joining by seed), a member only in the connection rule's direction.
  const bootstrap = [...id.members].sort().join(',');
  const handshake = new ListenerHandshake({ nodeId: id.target, secret: id.secret, clusterName: '', maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, bootstrap }, (peer) =>
    id.members.includes(peer) && id.target < peer ? 'wrong direction' : null,
  );
  const reader = new FrameReader(PRE_AUTH_MAX_FRAME_BYTES);
  try {
    reader.push(bytes);
    for (let f = reader.next(); f !== null; f = reader.next()) {
      if (handshake.receive(f.kind, f.payload).peer !== null) return { kind: 'unsafe', what: 'a completed handshake' };
    }
  } catch (e) {
    if (e instanceof FrameError || e instanceof HandshakeError) return { kind: 'drop', reason: e.message };
    throw e;
  }
  return { kind: 'open', calls: 0 };
}

/**
 * Reads `bytes` as the target's authenticated connection from `claimed` would: frames up to maxFrameBytes, Raft
 * messages decoded and checked against the connection's ids, CALL payloads handed on (answered with an error when
 * the router cannot decode them), REPLYs decoded, handshake frames refused.
 */
export function expectAfterAuth(id: Identity, claimed: string, bytes: Buffer): Expectation {
  const reader = new FrameReader(DEFAULT_MAX_FRAME_BYTES);
  let calls = 0;
  try {
    reader.push(bytes);
    for (let f = reader.next(); f !== null; f = reader.next()) {
      switch (f.kind) {
        case FrameKind.raft: {
          const m = decodeMessage(f.payload);
          if (m.from === claimed && m.to === id.target) return { kind: 'unsafe', what: 'a well-formed Raft message' };
          return { kind: 'drop', reason: `raft message from ${JSON.stringify(m.from)} to ${JSON.stringify(m.to)}` };
        }
        case FrameKind.call: {
          const c = decodeCall(f.payload);
          if (requestDecodes(c.payload)) return { kind: 'unsafe', what: 'a well-formed forwarded request' };
          calls++;
          break;
        }
        case FrameKind.reply:
          decodeReply(f.payload); // no call of ours is waiting: a good one is ignored
          break;
        case FrameKind.ping:
          break;
        default:
          return { kind: 'drop', reason: `unexpected ${kindName(f.kind)} frame after authentication` };
      }
    }
  } catch (e) {
    if (e instanceof FrameError) return { kind: 'drop', reason: e.message };
    throw e;
  }
  return { kind: 'open', calls };
}

function requestDecodes(payload: Uint8Array): boolean {
  try {
    decodeRequest(payload);
    return true;
  } catch {
    return false;
  }
}
