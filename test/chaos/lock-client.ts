/**
 * A chaos client of the locks: acquire on its own node → a short critical section against the fenced resource with
 * the token → release. Before each read and each write of the resource it asks the node whether the lock is still
 * held, as careful code would. Now and then the holder's node stalls for longer than the TTL between the read and
 * the write (the `stall` op blocks its event loop, as a long GC pause would, so the lock cannot renew itself): the
 * write that follows comes from a stale holder, and the resource must refuse it if a later holder got there first.
 */
import type { LockAcquireResult, LockHeldResult, StallResult } from '../support/node-protocol.js';
import { RemoteError, sleep, type NodeProcess } from '../support/process-cluster.js';
import type { FencedResource } from './fencing-resource.js';
import type { ClientBase, Grant } from './history.js';
import { KV_REQUEST_TIMEOUT_MS } from './kv-client.js';

export const LOCK_TTL_MS = 1000;
export const LOCK_WAIT_MS = 2500;
/** Steps (read then write) of a critical section at most. */
const MAX_STEPS = 3;
const STALL_CHANCE = 0.04;

export interface LockClientOptions extends ClientBase {
  readonly node: NodeProcess;
  readonly names: readonly string[];
  readonly resource: FencedResource;
}

interface Step {
  /** ms between reading and writing the resource. */
  readonly workMs: number;
  /** Whether the node's event loop is blocked for that long (else the client just waits). */
  readonly stall: boolean;
}

export async function runLockClient(o: LockClientOptions): Promise<void> {
  for (let attempt = 1; !o.done(); attempt++) {
    // A fixed number of draws per round, whatever happens in it.
    const name = o.rng.pick(o.names);
    const stepCount = o.rng.int(1, MAX_STEPS + 1);
    const steps: Step[] = Array.from({ length: MAX_STEPS }, () => {
      const stall = o.rng.chance(STALL_CHANCE);
      const workMs = Math.round(stall ? o.rng.range(1.1, 1.8) * LOCK_TTL_MS : o.rng.range(5, 60));
      return { workMs, stall };
    }).slice(0, stepCount);
    const restMs = o.rng.range(0, 100);
    if (!o.node.running) {
      await sleep(50);
      continue;
    }
    const grant = await acquire(o, name, `L${o.id}.${attempt}`);
    if (grant) {
      await criticalSection(o, grant, steps);
      await release(o, grant);
    } else {
      await sleep(20);
    }
    await sleep(restMs);
  }
}

async function acquire(o: LockClientOptions, name: string, holder: string): Promise<Grant | null> {
  const call = o.history.now();
  try {
    // The node may try for `wait`, then for one more request timeout, then renew once (another).
    const r = await o.node.request<LockAcquireResult>({ op: 'lockAcquire', name, ttl: LOCK_TTL_MS, wait: LOCK_WAIT_MS }, LOCK_WAIT_MS + 2 * KV_REQUEST_TIMEOUT_MS);
    const grant: Grant = { holder, node: o.node.id, name, token: r.token, call, return: o.history.now(), acquiredAt: o.history.fromEpoch(r.at) };
    o.history.grants.push(grant);
    o.history.count('lockAcquire', 'ok');
    return grant;
  } catch (e) {
    o.history.error('lockAcquire', e);
    // Timed out waiting: not acquired (a grant that raced the give-up is cancelled by the node).
    o.history.count('lockAcquire', e instanceof RemoteError && e.name === 'LockTimeoutException' ? 'fail' : 'unknown');
    return null;
  }
}

async function criticalSection(o: LockClientOptions, g: Grant, steps: readonly Step[]): Promise<void> {
  for (const step of steps) {
    if (!(await stillHeld(o, g))) return;
    const value = o.resource.read(g.name, g.token, g.holder);
    o.history.count('resourceRead', value === null ? 'fail' : 'ok');
    if (value === null) return;
    if (step.stall) await stall(o, step.workMs);
    else await sleep(step.workMs);
    // Asked again before writing; after a stall the write goes ahead whatever the answer, as from a holder whose
    // check raced its pause: a stale holder, which only the token can stop.
    const held = await stillHeld(o, g);
    if (!held && !step.stall) return;
    const accepted = o.resource.write(g.name, g.token, g.holder, value + 1);
    o.history.count('resourceWrite', accepted ? 'ok' : 'fail');
    if (!accepted) return;
  }
}

/** Asks the holder's node whether the lock is still held, recording the answer for the lease check. */
async function stillHeld(o: LockClientOptions, g: Grant): Promise<boolean> {
  try {
    const r = await o.node.request<LockHeldResult>({ op: 'lockHeld', name: g.name, token: g.token }, KV_REQUEST_TIMEOUT_MS);
    o.history.count('lockHeld', 'ok');
    o.history.beliefs.push({ holder: g.holder, name: g.name, token: g.token, held: r.held, at: o.history.fromEpoch(r.at) });
    return r.held;
  } catch (e) {
    o.history.error('lockHeld', e);
    o.history.count('lockHeld', 'unknown');
    return false;
  }
}

async function stall(o: LockClientOptions, ms: number): Promise<void> {
  try {
    await o.node.request<StallResult>({ op: 'stall', ms }, ms + KV_REQUEST_TIMEOUT_MS);
    o.history.count('holderStall', 'ok');
  } catch (e) {
    o.history.error('holderStall', e);
    o.history.count('holderStall', 'unknown');
  }
}

async function release(o: LockClientOptions, g: Grant): Promise<void> {
  o.history.releasedAt.set(g.holder, o.history.now());
  try {
    const released = await o.node.request<boolean>({ op: 'lockRelease', name: g.name, token: g.token }, KV_REQUEST_TIMEOUT_MS);
    o.history.count('lockRelease', released ? 'ok' : 'fail');
  } catch (e) {
    o.history.error('lockRelease', e);
    o.history.count('lockRelease', 'unknown');
  }
}
