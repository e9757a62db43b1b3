import { ClusterEvent } from '../../lib/index.js';

/** Published on whichever node created the order; delivered on every node, in the same order. */
@ClusterEvent()
export class OrderCreated {
  constructor(
    readonly orderId: string,
    readonly customer: string,
    readonly amount: number,
    readonly createdOn: string,
    /** Leader's wall clock when the order was taken: the payment window starts here. */
    readonly createdAt: number,
  ) {}
}

@ClusterEvent()
export class OrderPaid {
  constructor(readonly orderId: string) {}
}

@ClusterEvent()
export class OrderCancelled {
  constructor(
    readonly orderId: string,
    readonly reason: 'customer' | 'unpaid' = 'customer',
  ) {}
}
