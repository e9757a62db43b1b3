/**
 * A chaos client of @ForwardToLeader: one command at a time, each with an id unique in the run, executed on its own
 * node's CommandBus (the handler forwards it to the leader, whose body appends the id to its effect log), recorded
 * with its outcome as the library reported it.
 */
import type { CommandResult } from '../support/node-protocol.js';
import { RemoteError, sleep, type NodeProcess } from '../support/process-cluster.js';
import { errorName, type ClientBase, type CommandRecord } from './history.js';
import { KV_REQUEST_TIMEOUT_MS } from './kv-client.js';

export interface CommandClientOptions extends ClientBase {
  readonly node: NodeProcess;
}

export async function runCommandClient(o: CommandClientOptions): Promise<void> {
  for (let seq = 1; !o.done(); seq++) {
    const restMs = o.rng.range(0, 40);
    if (!o.node.running) {
      await sleep(50);
      continue;
    }
    const r = await performCommand(o, `C${o.id}.${seq}`);
    // A failing command can return at once (no leader known): do not spin.
    await sleep(r.outcome === 'ok' ? restMs : restMs + 20);
  }
}

async function performCommand(o: CommandClientOptions, id: string): Promise<CommandRecord> {
  const call = o.history.now();
  let record: CommandRecord;
  try {
    // The forward gives up after the request timeout (5 s); a paused node answers late.
    const r = await o.node.request<CommandResult>({ op: 'command', commandId: id }, KV_REQUEST_TIMEOUT_MS);
    record = { id, node: o.node.id, outcome: 'ok', ranOn: r.node, call, return: o.history.now() };
  } catch (e) {
    o.history.error('command', e);
    const notRun = e instanceof RemoteError && e.name === 'NoLeaderException';
    record = { id, node: o.node.id, outcome: notRun ? 'notRun' : 'unknown', error: errorName(e), call, return: o.history.now() };
  }
  o.history.count('command', record.outcome === 'notRun' ? 'fail' : record.outcome);
  o.history.commands.push(record);
  return record;
}
