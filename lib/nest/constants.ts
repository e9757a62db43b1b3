/** Metadata our decorators store on classes. */
export const FORWARD_TO_LEADER_METADATA = 'catga:forwardToLeader';
export const LEADER_ONLY_METADATA = 'catga:leaderOnly';
export const CLUSTER_EVENT_METADATA = 'catga:clusterEvent';

/** Prototype properties the class decorators inject into (property injection works for every handler scope). */
export const FORWARDER_PROPERTY = '__catgaForwarder';
export const COORDINATOR_PROPERTY = '__catgaCoordinator';

/**
 * Keys @nestjs/cqrs 12 stores handler targets under (dist/decorators/constants.js); the package does not export
 * them, so they are mirrored here and checked by test/nest.
 */
export const CQRS_COMMAND_HANDLER_METADATA = '__commandHandler__';
export const CQRS_QUERY_HANDLER_METADATA = '__queryHandler__';

/** The request channel forwarded commands and queries travel on. */
export const FORWARD_CHANNEL = 'catga.nest.forward';
