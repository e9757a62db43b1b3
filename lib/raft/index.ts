export * from './types.js';
export * from './message.js';
export * from './config.js';
export * from './membership.js';
export { Raft, EMPTY_STATE, type InitialState, type ReadState, type Role } from './raft.js';
export type { Ready, SoftState } from './ready.js';
export { RaftNode, type RaftConstructor, type RaftStatus, type PeerStatus } from './raft-node.js';
export { RaftLog } from './raft-log.js';
