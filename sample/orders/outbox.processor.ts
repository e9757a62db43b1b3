import { Injectable, Logger } from '@nestjs/common';
import { ClusterCoordinator, SingletonTask, type LeaderTask } from '../../lib/index.js';
import { OrdersReadModel } from './orders.read-model.js';

/** Replicated cursor: the event index of the last order whose confirmation was sent. */
const CURSOR_KEY = 'outbox/cursor';
const SCAN_EVERY_MS = 1000;

/**
 * Sends an order confirmation for every new order, from the leader only. It starts when this node becomes leader and
 * its signal aborts when leadership ends, so two nodes never send at once; the replicated cursor lets the next leader
 * carry on where this one stopped. Delivery is at least once: a confirmation sent just before a failover, whose
 * cursor update did not commit, is sent again by the next leader.
 */
@SingletonTask('outbox')
@Injectable()
export class OutboxProcessor implements LeaderTask {
  private readonly logger = new Logger('Outbox');

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly orders: OrdersReadModel,
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const cursor = await this.cluster.store.get<number>(CURSOR_KEY, { consistency: 'linearizable' });
      let sent = cursor?.value ?? 0;
      let version = cursor?.version ?? 0;
      for (const o of this.orders.all()) {
        if (signal.aborted) return;
        if (o.eventIndex === undefined || o.eventIndex <= sent) continue;
        this.logger.log(`confirmation for ${o.id} (${o.customer}, ${o.amount}) sent`);
        const r = await this.cluster.store.cas(CURSOR_KEY, version, o.eventIndex);
        if (!r.ok) return; // another leader moved the cursor: our tenure is over; the runner restarts us if not
        sent = o.eventIndex;
        version = r.version;
      }
      await sleep(SCAN_EVERY_MS, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
