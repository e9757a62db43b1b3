/** Retrying while etcd does not answer: the backoff, a sleep that ends early on abort, and one warning per outage. */
import type { Timers } from '../../io/clock.js';
import type { ClusterLogger } from '../logger.js';
import { isClosedClient, toClusterError } from './etcd-client.js';

export const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2_000;
export const backoff = (failures: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures, 10));

export function sleep(timers: Timers, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      t.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = timers.setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** Warns once when etcd stops answering, and once when it answers again. */
export class Outage {
  private down = false;
  constructor(
    private readonly logger: ClusterLogger,
    private readonly what: string,
  ) {}

  failed(e: unknown, doing: string): void {
    if (this.down || isClosedClient(e)) return;
    this.down = true;
    this.logger.warn(`${this.what}: ${doing} failed, retrying: ${toClusterError(e, doing).message}`);
  }

  ok(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.log(`${this.what}: etcd answers again`);
  }
}
