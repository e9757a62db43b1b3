/**
 * A chaos client of @ClusterEvent: one event at a time, each with a number unique in the run, published through the
 * EventBus of a node drawn at random; the node answers with the log index once the event is committed.
 */
import type { PublishResult } from '../support/node-protocol.js';
import { sleep, type NodeProcess } from '../support/process-cluster.js';
import { errorName, type ClientBase, type PublishRecord } from './history.js';
import { KV_REQUEST_TIMEOUT_MS } from './kv-client.js';

/** Event numbers are `id × EVENT_NUMBERS + seq`: unique across clients. */
const EVENT_NUMBERS = 1_000_000;

export interface EventClientOptions extends ClientBase {
  readonly nodes: readonly NodeProcess[];
}

export async function runEventClient(o: EventClientOptions): Promise<void> {
  for (let seq = 1; !o.done() && seq < EVENT_NUMBERS; seq++) {
    const node = o.rng.pick(o.nodes);
    const restMs = o.rng.range(0, 40);
    if (!node.running) {
      await sleep(50);
      continue;
    }
    const r = await publish(o, node, o.id * EVENT_NUMBERS + seq);
    await sleep(r.outcome === 'ok' ? restMs : restMs + 20);
  }
}

async function publish(o: EventClientOptions, node: NodeProcess, n: number): Promise<PublishRecord> {
  const call = o.history.now();
  let record: PublishRecord;
  try {
    const r = await node.request<PublishResult>({ op: 'publish', n }, KV_REQUEST_TIMEOUT_MS);
    record = { n, node: node.id, outcome: 'ok', index: r.index, call, return: o.history.now() };
  } catch (e) {
    o.history.error('publish', e);
    record = { n, node: node.id, outcome: 'unknown', error: errorName(e), call, return: o.history.now() };
  }
  o.history.count('publish', record.outcome);
  o.history.publishes.push(record);
  return record;
}
