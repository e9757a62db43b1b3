/**
 * Errors raised by the transport. Peers are untrusted until authenticated, so every problem with their input is one
 * of these, caught at the connection and turned into "drop that connection and log why" — never a crash.
 */

/** Bytes that are not a valid frame or payload: a bad length, an unknown kind, a truncated or trailing field. */
export class FrameError extends Error {
  override name = 'FrameError';
}

/** A handshake the peer or this node refused: bad MAC, unknown id, version mismatch, connection rule, timeout. */
export class HandshakeError extends Error {
  override name = 'HandshakeError';
  constructor(
    message: string,
    /** What to tell the peer in a REJECT frame before closing; null to close without a word. */
    readonly tellPeer: string | null = null,
  ) {
    super(message);
  }
}

/** The listener could not bind; names the address so an operator sees which member entry is at fault. */
export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
