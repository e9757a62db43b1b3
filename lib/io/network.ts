import type { Message, NodeId } from '../raft/index.js';

/**
 * Peer messaging as the runtime sees it: the port TcpNetwork implements in production and the simulator's in-memory
 * network in tests, with the call errors that tell "surely not sent" from "outcome unknown".
 */
/** What a node receives from its peers. */
export interface InboundHandler {
  raft(m: Message): void;
  /** A peer's request (a forwarded write or command); the returned bytes go back as the answer. */
  call(from: NodeId, payload: Uint8Array): Promise<Uint8Array>;
}

/**
 * Peer messaging as the runtime sees it. Production: TcpNetwork (authenticated TCP, one connection per peer pair);
 * the simulator: an in-memory network with faults. Raft messages are fire-and-forget: Raft tolerates loss, so a send
 * to a peer that is down or slow is dropped rather than queued without bound.
 */
export interface Network {
  listen(handler: InboundHandler): Promise<void>;
  sendRaft(m: Message): void;
  /**
   * Request/response to a peer. Rejects with NotSentError when the request surely never left this node (no
   * connection, refused), which makes a retry safe; with CallTimeoutError or ConnectionLostError otherwise.
   */
  call(to: NodeId, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  close(): Promise<void>;
  /** The configuration changed: whom to reach, and where. Absent on a network of fixed members. */
  setMembers?(members: readonly { readonly id: NodeId; readonly address: string }[]): void;
  /**
   * A request to whoever listens at `address` (a seed to join through, a member about to be added), whose id is not
   * known yet. Absent where addresses are not dialed.
   */
  callAddress?(address: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

/** The request was never handed to a connection: the peer cannot have acted on it. */
export class NotSentError extends Error {
  override name = 'NotSentError';
}

/** No answer in time: the peer may or may not have acted on the request. */
export class CallTimeoutError extends Error {
  override name = 'CallTimeoutError';
}

/** The connection closed after the request was sent: the peer may or may not have acted on it. */
export class ConnectionLostError extends Error {
  override name = 'ConnectionLostError';
}

/** The peer ran the request and it failed there; `payload` carries its encoded error. */
export class RemoteCallError extends Error {
  override name = 'RemoteCallError';
  constructor(
    message: string,
    readonly payload: Uint8Array,
  ) {
    super(message);
  }
}
