/**
 * Lease safety after a blocked event loop: the runtime counts the ticks that passed before it steps any message or
 * judges any lease. Regression: a follower whose loop was blocked stepped the leader's heartbeat with its stale tick
 * count; the catch-up that followed made that contact look an election timeout old, and it granted a vote right
 * after acknowledging the leader, whose lease rested on that acknowledgement.
 */
import { membershipOf } from '../../lib/raft/membership.js';
import { type TimerHandle, type Timers } from '../../lib/io/clock.js';
import { NotSentError, type InboundHandler, type Network } from '../../lib/io/network.js';
import { silentLogger } from '../../lib/cluster/logger.js';
import { RaftRuntime } from '../../lib/cluster/raft-runtime.js';
import { ClusterStateMachine } from '../../lib/cluster/state/cluster-state-machine.js';
import { message, MessageType, type Message } from '../../lib/raft/index.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';

const TICK_MS = 10;
const ELECTION_TICK = 15;

/** Time and timers moved by hand; a blocked loop is time moving while no timer runs. */
class ManualTime implements Timers {
  now = 0;
  private timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { at: this.now + ms, fn, cancelled: false };
    this.timers.push(t);
    return { cancel: () => void (t.cancelled = true) };
  }
  setImmediate(fn: () => void): void {
    this.setTimeout(fn, 0);
  }
  /** Runs every timer due by now (and those they set that are due too). */
  runDue(): void {
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= this.now);
      if (due.length === 0) return;
      this.timers = this.timers.filter((t) => !due.includes(t));
      for (const t of due) t.fn();
    }
  }
}

async function follower() {
  const time = new ManualTime();
  const sent: Message[] = [];
  let handler!: InboundHandler;
  const network: Network = {
    listen: async (h) => void (handler = h),
    sendRaft: (m) => void sent.push(m),
    call: () => Promise.reject(new NotSentError('no peers here')),
    close: async () => undefined,
  };
  const runtime = new RaftRuntime(
    { nodeId: 'b', membership: membershipOf(['a', 'b', 'c']), tickMs: TICK_MS, electionTick: ELECTION_TICK, heartbeatTick: 5, compactionThreshold: 1000 },
    { storage: new MemoryStorage(), network, clock: { now: () => time.now }, timers: time, random: () => 0.5, stateMachine: new ClusterStateMachine(), logger: silentLogger },
  );
  await runtime.start();
  /** Delivers `m`, then lets the Ready loop write and send (the storage is in memory: a few turns do it). */
  const deliver = async (m: Message) => {
    handler.raft(m);
    for (let i = 0; i < 5; i++) {
      time.runDue();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { time, sent, runtime, deliver };
}

const heartbeat = (stamp: number) => message({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 1, stamp });
const vote = () => message({ type: MessageType.Vote, from: 'c', to: 'b', term: 2, index: 0, logTerm: 0 });

test('a follower that acknowledged the leader after a stall refuses votes for an election timeout', async () => {
  const f = await follower();
  await f.deliver(heartbeat(1));
  expect(f.runtime.leadership.leaderId).toBe('a');

  f.time.now += 10 * ELECTION_TICK * TICK_MS; // the event loop was blocked for ten election timeouts
  await f.deliver(heartbeat(2)); // the first thing it handles on waking: the leader counts this acknowledgement
  expect(f.sent.some((m) => m.type === MessageType.HeartbeatResp && m.stamp === 2)).toBe(true);
  f.time.runDue(); // the tick timer runs next

  await f.deliver(vote());
  const answer = f.sent.find((m) => m.type === MessageType.VoteResp);
  expect(answer === undefined || answer.reject).toBe(true);
  expect(f.runtime.leadership.term).toBe(1);
  await f.runtime.stop({ transfer: false });
});

test('the lease a status page reports is judged on the current tick, not the last one the loop counted', async () => {
  const f = await follower();
  f.time.now += 5 * TICK_MS;
  expect(f.runtime.status().leaseValid).toBe(false);
  expect(f.runtime.raft.core.now).toBe(5); // status() counted the ticks that passed
  await f.runtime.stop({ transfer: false });
});
