/**
 * The leader-work part of a chaos run: the node processes run the leader-work app with an effect log each, command
 * and event clients work next to the kv and lock clients, and at the end the effect logs are read once the nodes
 * have delivered the same events.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventPositionResult } from '../support/node-protocol.js';
import type { Prng } from '../support/prng.js';
import { sleep, type ProcessCluster } from '../support/process-cluster.js';
import { runCommandClient } from './command-client.js';
import { parseEffectLog, type EffectLine } from './effect-log.js';
import { runEventClient } from './event-client.js';
import type { History } from './history.js';
import type { LeaderWorkHistory } from './leader-work-check.js';

export const COMMAND_CLIENTS_PER_NODE = 1;
/** Event clients in all, each publishing through a node drawn at random. */
export const eventClients = (nodes: number): number => nodes;
/** The node program's mode with the Nest app. */
export const LEADER_WORK_ENV: Readonly<Record<string, string>> = { CATGA_TEST_APP: 'leader-work' };
/** How long the nodes get, after the faults healed, to deliver the same events. */
const CONVERGE_TIMEOUT_MS = 20_000;

/** Gives every node its effect log, next to (not in) its dataDir: removed with the cluster. */
export function useEffectLogs(cluster: ProcessCluster): void {
  for (const n of cluster.nodes) n.setEnv({ CATGA_EFFECT_LOG: effectLogPath(cluster, n.id) });
}

function effectLogPath(cluster: ProcessCluster, id: string): string {
  return join(cluster.dataRoot, `${id}.effects.jsonl`);
}

export interface LeaderWorkClientOptions {
  readonly cluster: ProcessCluster;
  /** Forked once per client, in a fixed order: command clients, then event clients. */
  readonly rng: Prng;
  readonly history: History;
  readonly done: () => boolean;
}

export function startLeaderWorkClients(o: LeaderWorkClientOptions): Promise<void>[] {
  const { cluster, history, done } = o;
  const commands = cluster.nodes.flatMap((node, i) =>
    Array.from({ length: COMMAND_CLIENTS_PER_NODE }, (_, j) => runCommandClient({ id: i * COMMAND_CLIENTS_PER_NODE + j, node, rng: o.rng.fork(), history, done })),
  );
  const events = Array.from({ length: eventClients(cluster.nodes.length) }, (_, id) => runEventClient({ id, nodes: cluster.nodes, rng: o.rng.fork(), history, done }));
  return [...commands, ...events];
}

export interface EffectLogs {
  /** What the checks take, the clients' records included. */
  readonly history: LeaderWorkHistory;
  /** Each node's log as read. */
  readonly texts: Readonly<Record<string, string>>;
  /** Whether every running node had delivered the same last event (twice in a row) before the logs were read. */
  readonly converged: boolean;
}

/**
 * After the faults healed: waits (bounded) until the running nodes agree on the last event they delivered, at or past
 * every acknowledged publish, then reads every node's effect log. Call before the cluster (and its logs) is removed.
 */
export async function readEffectLogs(cluster: ProcessCluster, history: History): Promise<EffectLogs> {
  const running = cluster.nodes.filter((n) => n.running);
  const converged = running.length === cluster.nodes.length && (await eventsConverged(cluster, history));
  const texts: Record<string, string> = {};
  const logs: Record<string, EffectLine[]> = {};
  const unreadable: Record<string, string[]> = {};
  for (const n of cluster.nodes) {
    const path = effectLogPath(cluster, n.id);
    texts[n.id] = existsSync(path) ? readFileSync(path, 'utf8') : '';
    const parsed = parseEffectLog(texts[n.id]!, (t) => history.fromEpoch(t));
    logs[n.id] = parsed.lines;
    if (parsed.unreadable.length > 0) unreadable[n.id] = parsed.unreadable;
  }
  return {
    history: { commands: history.commands, publishes: history.publishes, logs, unreadable, atEnd: running.map((n) => n.id) },
    texts,
    converged,
  };
}

async function eventsConverged(cluster: ProcessCluster, history: History): Promise<boolean> {
  const floor = Math.max(0, ...history.publishes.map((p) => p.index ?? 0));
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  let previous = '';
  while (Date.now() < deadline) {
    const positions = await Promise.all(
      cluster.nodes.map((n) => n.request<EventPositionResult>({ op: 'eventPosition' }, 2000).then((r) => r.position, () => -1)),
    );
    const same = positions.every((p) => p === positions[0]) && positions[0]! >= floor;
    if (same && positions.join() === previous) return true;
    previous = same ? positions.join() : '';
    await sleep(200);
  }
  return false;
}

/** Copies the effect logs of a failed run where they outlive it; returns the directory. */
export function keepEffectLogs(texts: Readonly<Record<string, string>>, seed: number): string {
  const dir = mkdtempSync(join(tmpdir(), `catga-chaos-seed${seed}-effects-`));
  for (const [id, text] of Object.entries(texts)) writeFileSync(join(dir, `${id}.effects.jsonl`), text);
  return dir;
}
