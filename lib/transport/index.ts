export { TcpNetwork, type TcpNetworkOptions, type TcpNetworkTlsOptions } from './tcp-network.js';
export { parseMember, parseMembers, MemberAddressError, type MemberAddress, type MemberInput } from './member-address.js';
export { FrameError, HandshakeError, ListenError } from './errors.js';
export { encodeMessage, decodeMessage, messageSize, writeMessage } from './raft-codec.js';
export {
  FrameReader,
  FrameKind,
  allocFrame,
  frame,
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  PRE_AUTH_MAX_FRAME_BYTES,
  type Frame,
} from './frame.js';
export {
  DialerHandshake,
  ListenerHandshake,
  PROTOCOL_VERSION,
  type HandshakeConfig,
  type HandshakeStep,
  type PeerIdentity,
} from './handshake.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export type { TransportLogger } from './logger.js';
export type { Counters, PeerStats, TransportStats } from './stats.js';
