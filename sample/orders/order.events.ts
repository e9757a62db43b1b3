import { ClusterEvent } from '../../lib/index.js';

/** Published on whichever node created the order; delivered on every node, in the same order. */
@ClusterEvent()
export class OrderCreated {
  constructor(
    readonly orderId: string,
    readonly customer: string,
    readonly amount: number,
    readonly createdOn: string,
  ) {}
}

@ClusterEvent()
export class OrderCancelled {
  constructor(readonly orderId: string) {}
}
