/**
 * Published on this node's EventBus, in order with the cluster events, when events this node had not yet delivered
 * were dropped from the replicated retention (`eventRetention`): every cluster event with a log index in
 * (`after`, `upTo`] that this node had not handled is gone for it. Handle it to rebuild what those events fed, for
 * example a read model from the replicated store. A local event: it is never sent to other nodes.
 */
export class ClusterEventsMissed {
  constructor(
    /** The log index of the last cluster event this node delivered before the gap. */
    readonly after: number,
    /** The newest log index dropped. */
    readonly upTo: number,
  ) {}
}
