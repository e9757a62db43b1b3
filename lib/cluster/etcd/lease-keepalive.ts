import { castGrpcError, type Etcd3, type ILeaseKeepAliveResponse } from 'etcd3';
import type { Timers } from '../../io/clock.js';
import { callOptions } from './etcd-client.js';

/** One keepalive in flight: its answer, and a way to end it early (the lease is being dropped). */
export interface Keepalive {
  readonly answer: Promise<ILeaseKeepAliveResponse>;
  end(reason: Error): void;
}

/**
 * One keepalive of lease `id` on a stream of its own, answered or failed within `timeoutMs` (+100 ms for the guard,
 * so etcd's own deadline error comes first). etcd3's keepalive object renews on its own schedule and reports a loss
 * late; a lease whose validity is measured from each renewal's send time needs single, bounded renewals instead.
 */
export async function keepaliveOnce(client: Etcd3, id: string, timeoutMs: number, timers: Timers, late: () => Error): Promise<Keepalive> {
  const stream = await client.leaseClient.leaseKeepAlive(callOptions(timeoutMs));
  let end: (reason: Error) => void = () => undefined;
  const answer = new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
    let settled = false;
    const done = (r: ILeaseKeepAliveResponse | Error) => {
      if (settled) return;
      settled = true;
      guard.cancel();
      try {
        // The 'error' listener stays: late errors on this stream are ignored, never unhandled.
        if (r instanceof Error) stream.cancel();
        else stream.end();
      } catch {
        // already closed
      }
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const guard = timers.setTimeout(() => done(late()), timeoutMs + 100);
    end = done;
    stream.on('data', (r: ILeaseKeepAliveResponse) => done(r));
    stream.on('error', (e: Error) => done(castGrpcError(e)));
    stream.write({ ID: id });
  });
  return { answer, end };
}
