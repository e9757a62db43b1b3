import { membershipOf } from '../../lib/raft/membership.js';
import { MessageType, Raft, votersOf, type Entry, type Membership, type Message, type RaftConstructor, type SoftState } from '../../lib/raft/index.js';
import { CoreMember } from './core-member.js';
import { EventQueue } from './event-queue.js';
import { checkInvariants, LogLedger, type Violation, type VoterView } from './invariants.js';
import { MembershipChecks, watchCore } from './membership-invariants.js';
import { MembershipWorkload } from './membership-workload.js';
import { checkLinearizability, type Operation } from './linearizability.js';
import { kvModel, type KvInput, type KvOutput } from './kv-model.js';
import type { MemberHooks, SimMember } from './member.js';
import { Prng } from '../support/prng.js';
import {
  describeLeaderWork,
  describeMembership,
  describeProfile,
  drawLeaderWork,
  drawMembership,
  drawProfile,
  type LeaderWorkProfile,
  type MembershipProfile,
} from './profile.js';
import type { LockModule } from '../../lib/cluster/state/lock-module.js';
import { LockWorkload } from './lock-workload.js';
import { RuntimeMember } from './runtime-member.js';
import { TenureWatch } from './tenure-watch.js';
import { SimNetwork } from './sim-network.js';
import type { BrokenLeaderWork } from './broken-leader-work.js';
import { EventWatch } from './event-watch.js';
import { FireWorkload } from './fire-workload.js';
import { ForwardWorkload } from './forward-workload.js';
import { SettleWatch } from './settle-watch.js';

/** `core`: the bare consensus core with a disk model (fast); `runtime`: RaftRuntime + FileStorage + state machine. */
export type SimLevel = 'core' | 'runtime';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly level?: SimLevel;
  /** A deliberately broken core, for the checker self-test. */
  readonly core?: RaftConstructor;
  /** A deliberately broken lock table (runtime level), for the checker self-test. */
  readonly lockModule?: () => LockModule;
  /** Deliberately broken leader-work parts (runtime level), for the checker self-test. */
  readonly broken?: BrokenLeaderWork;
  /** Simulated ms of faults, then ms of calm in which the cluster must recover. */
  readonly faultMs?: number;
  readonly calmMs?: number;
  /**
   * Random membership changes (`--membership`): `nodes` voters plus spare nodes waiting to be added, and the
   * membership checks (membership-invariants.ts).
   */
  readonly membership?: boolean;
  /** Keep a readable trace of the run (slower); a failing seed is replayed with it. */
  readonly trace?: boolean;
  /** How many trace lines to keep (the last ones). */
  readonly traceLines?: number;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly violation: Violation | null;
  readonly trace: readonly string[];
  readonly steps: number;
  readonly elections: number;
  /** Snapshots taken by a member's own state machine, and snapshots installed from a leader. */
  readonly snapshots: { readonly made: number; readonly installed: number };
  readonly commits: number;
  readonly ops: number;
  /** Runtime level: locks granted to the lock clients, and leader-task runs started. */
  readonly lockGrants: number;
  readonly taskRuns: number;
  /** Runtime level: leader work done and checked (forwarded calls, singleton fires, events, settled operations). */
  readonly leaderWork: LeaderWorkStats | null;
  /** Messages the targeted fault dropped or held back. */
  readonly targeted: { readonly dropped: number; readonly held: number };
  /** Simulated ms from the last heal until some node held a valid lease (null: never). */
  readonly leaseAfterHealMs: number | null;
  /** Membership runs: the changes proposed, refused and committed, and removed nodes stopped for good. */
  readonly membership: MembershipStats | null;
  readonly profile: string;
}

export interface MembershipStats {
  readonly proposed: number;
  readonly refused: number;
  readonly committed: number;
  readonly twoVoterTries: number;
  readonly retired: number;
  /** Voters and learners of the last committed configuration. */
  readonly finalVoters: number;
  readonly finalLearners: number;
}

export interface LeaderWorkStats {
  readonly forwards: number;
  readonly forwardRuns: number;
  readonly fires: number;
  readonly eventsPublished: number;
  readonly eventsDelivered: number;
  readonly eventGaps: number;
  readonly settled: number;
  readonly longestSettleMs: number;
}

const TICK_MS = 10;
const ELECTION_TICK = 15;
const HEARTBEAT_TICK = 5;
const MAX_DRIFT = 0.1;
/**
 * Raft's ticks drift by up to 9% here, far beyond real clocks, to stress its own bound. Locks measure their leases on
 * clocks as real hosts have them: rate within 0.5%, wall clocks within 10 ms of each other (NTP does better).
 */
const LEASE_CLOCK_DRIFT = 0.005;
const WALL_OFFSET_MS = 10;
const OP_TIMEOUT_MS = 1000;
const KEYS = ['a', 'b', 'c'];
const TRACE_KEEP = 400;
const LINEARIZABILITY_BUDGET = 2_000_000;
const SAME_INSTANT_LIMIT = 100_000;
/** After the last heal a node must hold a valid lease, and a write must commit, within this many simulated ms. */
const LIVENESS_MS = 1500;

/**
 * One seeded run: N members over a fake network and crash-losable disks, a nemesis, and KV clients. Every event is
 * followed by the safety checks; the end adds liveness and linearizability. The core level runs synchronously; the
 * runtime level lets promise callbacks settle after every event (nothing real is pending, so it stays deterministic).
 */
export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const level = opts.level ?? 'core';
  const rng = new Prng(opts.seed);
  const profile = drawProfile(rng.fork());
  const faultMs = opts.faultMs ?? 3000;
  const calmMs = opts.calmMs ?? 3000;
  const queue = new EventQueue();
  const ledger = new LogLedger();
  const trace: string[] = [];
  const keep = opts.traceLines ?? TRACE_KEEP;
  const log = (text: () => string) => {
    if (!opts.trace) return;
    trace.push(`${queue.now.toFixed(3).padStart(9)} ${text()}`);
    if (trace.length > keep * 2) trace.splice(0, trace.length - keep);
  };
  let violation: Violation | null = null;
  const fail = (v: Violation) => {
    if (violation) return;
    violation = v;
    log(() => `VIOLATION ${v.kind}: ${v.detail}`);
  };

  // Membership runs draw from a stream of their own too; the other runs never touch it.
  const memRng = opts.membership ? new Prng(Math.imul(opts.seed ^ 0x1b873593, 0x85ebca6b) >>> 0) : null;
  const mem: MembershipProfile | null = memRng ? drawMembership(memRng.fork()) : null;
  const voterIds = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
  /** Spares start with an empty configuration; reserves are fresh nodes that start only when a removed node retires. */
  const spareIds = Array.from({ length: mem?.spares ?? 0 }, (_, i) => `n${opts.nodes + i + 1}`);
  const reserveIds = Array.from({ length: mem?.reserves ?? 0 }, (_, i) => `n${opts.nodes + spareIds.length + i + 1}`);
  const ids = [...voterIds, ...spareIds, ...reserveIds];
  const initialMembership = membershipOf(voterIds);
  const dormant = new Set(reserveIds);
  const retired = new Set<string>();
  const inactive = (n: SimMember) => dormant.has(n.id) || retired.has(n.id);
  const checks = mem ? new MembershipChecks(initialMembership) : null;
  // Leader work draws from a stream of its own, seeded apart from the main one, so the older draws keep their values.
  const workRng = new Prng(Math.imul(opts.seed ^ 0x5bd1e995, 0x27d4eb2d) >>> 0);
  const work: LeaderWorkProfile = drawLeaderWork(workRng.fork());
  let forwards: ForwardWorkload | null = null;
  const eventRetention = () => work.eventRetention;
  const byId = new Map<string, SimMember>();
  const network = new SimNetwork(queue, rng.fork(), (m: Message) => {
    const n = byId.get(m.to);
    if (!n?.alive) return;
    log(() => `${m.from}->${m.to} ${describeMessage(m)}`);
    (n as CoreMember).step(m);
  });
  if (opts.trace) {
    const transmit = network.transmit.bind(network);
    network.transmit = (from, to, arrive, dup) => transmit(from, to, () => (log(() => `${from}->${to} delivery`), arrive()), dup);
  }

  let elections = 0;
  const snapshots = { made: 0, installed: 0 };
  let onNewLeader: (m: SimMember) => void = () => {};
  const hooks: MemberHooks = {
    applied: (member: SimMember, e: Entry) => {
      const v = checks?.applied(member.id, e) ?? ledger.applied(member.id, e);
      if (v) fail(v);
    },
    softState: (member: SimMember, s: SoftState) => {
      log(() => `${member.id} is ${s.role} term ${s.term} leader ${s.leader || '-'}`);
      if (s.role !== 'leader') return;
      elections++;
      const v = ledger.leaderElected(member.id, s.term, member.raft!.core.log) ?? checks?.leaderElected(member);
      if (v) fail(v);
      onNewLeader(member);
    },
    snapshot: (member: SimMember, meta, how) => {
      snapshots[how]++;
      const v = checks?.snapshot(member.id, meta, how);
      if (v) fail(v);
    },
  };
  // The membership checks watch each core at the moments a Ready does not show: a leader's commit, a vote request.
  const core: RaftConstructor | undefined = checks
    ? watchCore(opts.core ?? Raft, {
        committing: (c, index) => {
          const v = checks.committing(c, index, (id) => byId.get(id));
          if (v) fail(v);
        },
        sending: (c, m) => {
          const v = checks.sending(c, m);
          if (v) fail(v);
        },
      })
    : opts.core;

  const memberRng = rng.fork();
  for (const id of ids) {
    const skew = memberRng.range(-0.9 * MAX_DRIFT, 0.9 * MAX_DRIFT);
    const raftOptions = {
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      maxClockDrift: MAX_DRIFT,
      readOnly: profile.readOnly,
      maxSizePerMsg: profile.maxSizePerMsg,
      maxInflightMsgs: profile.maxInflightMsgs,
    };
    // Without membership changes every node is a voter from the start (the `voters` shorthand, as before).
    const membership: Membership | undefined = mem ? (voterIds.includes(id) ? initialMembership : { members: [] }) : undefined;
    const member: SimMember =
      level === 'core'
        ? new CoreMember(
            id,
            {
              config: membership ? { id, membership, ...raftOptions } : { id, voters: ids, ...raftOptions },
              core,
              tickMs: TICK_MS * (1 + skew),
              snapshotEvery: profile.snapshotEvery,
            },
            queue,
            memberRng.fork(),
            (m) => network.send(m),
            hooks,
          )
        : new RuntimeMember(
            id,
            {
              config: {
                membership: membership ?? membershipOf(ids),
                tickMs: TICK_MS,
                compactionThreshold: profile.snapshotEvery,
                compactionGrowsWithState: profile.snapshotGrowsWithState,
                requestTimeoutMs: OP_TIMEOUT_MS,
                ...raftOptions,
              },
              core,
              rate: 1 / (1 + skew),
              leaseClockRate: 1 + memberRng.range(-LEASE_CLOCK_DRIFT, LEASE_CLOCK_DRIFT),
              wallOffsetMs: memberRng.range(-WALL_OFFSET_MS, WALL_OFFSET_MS),
              requestTimeoutMs: OP_TIMEOUT_MS,
              eventRetention,
              forwardWork: (m, run) => forwards!.serve(m, run),
              lockModule: opts.lockModule,
              broken: opts.broken,
            },
            queue,
            memberRng.fork(),
            network,
            (to) => byId.get(to) as RuntimeMember,
            hooks,
          );
    byId.set(id, member);
  }
  const members = [...byId.values()];
  for (const m of members) if (!inactive(m)) m.boot();
  const leaderOf = () => members.find((x) => x.alive && x.raft?.core.role === 'leader');
  /** Membership runs: a node campaigns with its own configuration's voters; a node stopped for good votes no more. */
  const voterView: VoterView | undefined = checks
    ? {
        candidacy: (n) => {
          if (retired.has(n.id)) return null;
          const voters = n.raft ? n.raft.core.voters : votersOf(n.durableMembership());
          return voters.includes(n.id) ? voters : null;
        },
        voter: (id) => (retired.has(id) ? undefined : byId.get(id)),
      }
    : undefined;

  // ---- clients ------------------------------------------------------------------------------------------------
  const history: Operation<KvInput, KvOutput>[] = [];
  const clientRng = rng.fork();
  let opSeq = 0;
  const runClient = (client: number) => {
    const think = () => queue.schedule(clientRng.range(0, 15), issue);
    const issue = () => {
      if (queue.now > faultMs + calmMs - OP_TIMEOUT_MS) return;
      const leader = leaderOf();
      const member = leader && clientRng.chance(0.85) ? leader : clientRng.pick(members);
      const key = clientRng.pick(KEYS);
      const r = clientRng.next();
      const op = ++opSeq;
      const value = `v${op}`;
      const input: KvInput =
        r < 0.4
          ? { op: 'get', key }
          : r < 0.7
            ? { op: 'put', key, value }
            : r < 0.9
              ? { op: 'cas', key, expectedVersion: clientRng.int(0, 4), value }
              : { op: 'delete', key };
      const call = queue.now;
      const settled = settles?.watch(member.id, `kv ${input.op} (client ${client} op ${op})`, OP_TIMEOUT_MS * 1.1 + 20);
      const started = member.submit(input, client, op, OP_TIMEOUT_MS, (out) => {
        settled?.();
        // A read whose outcome is unknown had no effect; a write's may have had one.
        if (out) history.push({ clientId: client, input, call, output: out, return: queue.now });
        else if (input.op !== 'get') history.push({ clientId: client, input, call, output: { unknown: true }, return: Infinity });
        log(() => `client ${client} op ${op} on ${member.id} ${JSON.stringify(input)} -> ${out ? JSON.stringify(out) : 'unknown'}`);
        think();
      });
      if (!started) {
        settled?.();
        think();
      }
    };
    think();
  };
  for (let c = 0; c < profile.clients; c++) runClient(c);

  // ---- nemesis ------------------------------------------------------------------------------------------------
  const nem = rng.fork();
  network.faults = profile.net;
  const every = (mean: number, act: () => void) => {
    if (!Number.isFinite(mean)) return;
    const loop = () => {
      if (queue.now >= faultMs) return;
      act();
      queue.schedule(nem.range(0.2, 1.8) * mean, loop);
    };
    queue.schedule(nem.range(0.2, 1.8) * mean, loop);
  };
  const crash = (n: SimMember, afterSync = false) => {
    if (!n.alive || queue.now >= faultMs) return; // a crash scheduled during the faults may land after them
    log(() => `CRASH ${n.id}${afterSync ? ' after sync' : ''}`);
    n.crash(afterSync);
    queue.schedule(nem.range(20, 600), () => {
      if (n.alive || queue.now >= faultMs || retired.has(n.id)) return;
      log(() => `RESTART ${n.id}`);
      n.boot();
    });
  };
  every(profile.crashEvery, () => {
    // Leaders are crashed more often than followers: that is where uncommitted tails and term changes pile up.
    const leader = leaderOf();
    crash(leader && nem.chance(0.5) ? leader : nem.pick(members));
  });
  every(profile.partitionEvery, () => {
    if (network.hasCuts()) {
      log(() => 'HEAL');
      network.heal();
      return;
    }
    const shuffled = [...ids].sort(() => nem.next() - 0.5);
    const kind = nem.int(0, 3);
    if (kind === 0) {
      const cut = nem.int(1, ids.length);
      network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      log(() => `PARTITION ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}`);
    } else if (kind === 1) {
      const lone = leaderOf()?.id ?? shuffled[0]!;
      network.partition([[lone], ids.filter((i) => i !== lone)]);
      log(() => `ISOLATE ${lone}`);
    } else {
      network.cutOneWay(shuffled[0]!, shuffled[1]!);
      log(() => `CUT ${shuffled[0]}->${shuffled[1]}`);
    }
  });
  // A fault aimed at transfers needs transfers to aim at: such seeds hand leadership over every 450 ms on average,
  // long enough for an abandoned transfer to end and the lease to come back before a held TimeoutNow arrives.
  const aimsAtTransfers = work.targeted?.target === 'timeout-now' || work.targeted?.target === 'transfer';
  every(aimsAtTransfers ? Math.min(profile.transferEvery, 450) : profile.transferEvery, () => {
    const leader = leaderOf();
    if (!leader) return;
    const to = nem.pick((mem ? leader.raft!.core.voters : ids).filter((i) => i !== leader.id));
    if (to === undefined) return;
    log(() => `TRANSFER ${leader.id} -> ${to}`);
    leader.transferLeader(to);
  });

  /**
   * Figure 8: isolate leader L and give it an entry nobody else has; when the others elect C, crash C after it wrote
   * its no-op but before sending it; heal, so L returns and leads again. A core that commits L's old-term entry by
   * counting replicas now leaves it committed on a quorum that C (newer last term) can outvote.
   */
  let isolated: SimMember | null = null;
  if (profile.figure8) {
    every(300, () => {
      const leader = leaderOf();
      if (isolated || !leader || network.hasCuts()) return;
      isolated = leader;
      network.partition([[leader.id], ids.filter((i) => i !== leader.id)]);
      log(() => `FIGURE8 isolate ${leader.id} with a fresh entry`);
      leader.submit({ op: 'put', key: 'f8', value: `f${++opSeq}` }, -2, opSeq, OP_TIMEOUT_MS, () => {});
      queue.schedule(1000, () => {
        if (isolated !== leader) return;
        isolated = null; // nobody else was elected in time; start over
        network.heal();
      });
    });
  }
  onNewLeader = (member) => {
    if (queue.now >= faultMs) return;
    if (isolated && member !== isolated) {
      isolated = null;
      queue.schedule(0, () => {
        crash(member, true); // runs before the disk finishes the Ready that holds the no-op and its App messages
        network.heal();
      });
      return;
    }
    if (nem.chance(profile.crashNewLeader)) queue.schedule(nem.range(0, 4), () => crash(member));
  };

  // ---- membership changes -------------------------------------------------------------------------------------
  let changes: MembershipWorkload | null = null;
  if (mem && memRng && checks) {
    const cutRng = memRng.fork();
    // Changes go on for a while into the calm: a proposal must commit, and the cluster settle, with changes under way.
    changes = new MembershipWorkload(queue, memRng.fork(), mem, spareIds, faultMs + calmMs / 3, {
      leader: leaderOf,
      removed: () => checks.removed,
      isolate: (group) => {
        if (queue.now >= faultMs) return;
        const rest = ids.filter((i) => !group.includes(i));
        const release = [network.cutUntilReleased(group, rest), network.cutUntilReleased(rest, group)];
        log(() => `ISOLATE ${group} after a membership change`);
        // Long enough, mostly, for the others to elect a leader of their own.
        queue.schedule(cutRng.range(400, 1000), () => {
          log(() => `HEAL ${group} (membership)`);
          for (const r of release) r();
        });
      },
      cutOneWay: (from, to) => {
        if (queue.now >= faultMs) return;
        const release = network.cutUntilReleased([from], [to]);
        log(() => `CUT ${from}->${to} after a membership change`);
        queue.schedule(cutRng.range(20, 200), () => {
          log(() => `HEAL ${from}->${to} (membership)`);
          release();
        });
      },
      retire: (id) => {
        const n = byId.get(id)!;
        retired.add(id);
        n.crash();
        const fresh = reserveIds.find((r) => dormant.has(r));
        if (!fresh) return null;
        dormant.delete(fresh);
        byId.get(fresh)!.boot();
        return fresh;
      },
      log,
    });
    changes.start();
    const before = onNewLeader;
    onNewLeader = (member) => {
      changes!.newLeader(member);
      before(member);
    };
  }

  // ---- leader work (runtime level: it needs the coordinator) ---------------------------------------------------
  const lockRng = rng.fork();
  network.target(work.targeted, workRng.fork());
  const clientsEnd = faultMs + calmMs - OP_TIMEOUT_MS;
  let locks: LockWorkload | null = null;
  let tenures: TenureWatch | null = null;
  let settles: SettleWatch | null = null;
  let fires: FireWorkload | null = null;
  let events: EventWatch | null = null;
  if (level === 'runtime') {
    const rts = members as RuntimeMember[];
    settles = new SettleWatch(queue, fail, faultMs + calmMs);
    for (const m of rts) m.onCrash(() => settles!.crashed(m.id));
    locks = new LockWorkload(queue, lockRng, rts, clientsEnd, fail, log, settles, OP_TIMEOUT_MS);
    locks.start(profile.lockClients);
    tenures = new TenureWatch(queue, rts, fail, log);
    forwards = new ForwardWorkload(queue, workRng.fork(), () => rts, OP_TIMEOUT_MS, clientsEnd, settles, fail, log);
    forwards.start(work.forwardClients);
    if (Number.isFinite(work.fireEvery)) fires = new FireWorkload(queue, workRng.fork(), rts, work.fireEvery, clientsEnd, OP_TIMEOUT_MS, settles, fail, log);
    events = new EventWatch(queue, workRng.fork(), rts, ledger, work.eventRetention < 1000, OP_TIMEOUT_MS, clientsEnd, settles, fail, log);
    events.start(work.eventClients);
  }

  // ---- calm: heal everything; the cluster must elect a leader and apply a probe write everywhere ---------------
  /** The leader's applied index when a probe write was confirmed: every member must reach it. */
  let probeIndex = 0;
  queue.schedule(faultMs, () => {
    log(() => 'CALM: heal, restart all');
    network.calm();
    for (const n of members) if (!n.alive && !inactive(n)) n.boot();
    const probe = () => {
      if (probeIndex > 0) return;
      const leader = leaderOf();
      leader?.submit({ op: 'put', key: 'probe', value: 'x' }, -1, ++opSeq, 300, (out) => {
        if (out && probeIndex === 0) probeIndex = leader.appliedIndex;
      });
      queue.schedule(300, probe);
    };
    queue.schedule(0, probe);
  });
  /** When a node first held a valid lease after the last heal. */
  let leaseAfterHeal: number | null = null;
  /** Membership runs: the members of the newest committed configuration that still run (all but retired ones). */
  const finalMembers = () => {
    if (!checks) return members;
    const m = checks.latest().membership;
    return members.filter((n) => !inactive(n) && m.members.some((x) => x.id === n.id));
  };
  queue.schedule(faultMs + LIVENESS_MS, () => {
    if (checks) {
      // The promise holds only while a majority of the current voters runs (a removed node is never a voter again).
      const voters = votersOf(checks.latest().membership);
      const up = voters.filter((v) => !retired.has(v) && !dormant.has(v));
      if (up.length < Math.floor(voters.length / 2) + 1) {
        log(() => `no liveness check: only ${up} of the voters ${voters} run`);
        return;
      }
    }
    const missing = [leaseAfterHeal === null ? 'no node held a valid lease' : '', probeIndex === 0 ? 'no write committed' : ''].filter(Boolean);
    if (missing.length > 0) fail({ kind: 'liveness', detail: `${LIVENESS_MS} ms after the last heal: ${missing.join(' and ')}` });
  });

  // ---- run ----------------------------------------------------------------------------------------------------
  const end = faultMs + calmMs;
  const seenCommit = new Map<string, number>();
  let steps = 0;
  let instant = -1;
  let sameInstant = 0;
  while (!violation && queue.runNext(end)) {
    if (level === 'runtime') await settle();
    steps++;
    // Time that stops moving (a timer re-armed for nothing, again and again) would hang the run: report it instead.
    sameInstant = queue.now === instant ? sameInstant + 1 : 0;
    instant = queue.now;
    if (sameInstant > SAME_INSTANT_LIMIT) fail({ kind: 'livelock', detail: `${SAME_INSTANT_LIMIT} events in a row at ${instant.toFixed(3)} ms` });
    const v = checkInvariants(members, steps % 64 === 0, seenCommit, voterView);
    if (v) fail(v);
    const down = members.find((m) => m.startFailure);
    if (down) fail({ kind: 'recovery', detail: down.startFailure! });
    if (leaseAfterHeal === null && queue.now >= faultMs && members.some((m) => m.hasValidLease())) leaseAfterHeal = queue.now - faultMs;
  }
  if (!violation) {
    const v = checkInvariants(members, true, seenCommit, voterView);
    if (v) fail(v);
  }
  const behind = finalMembers().filter((n) => probeIndex === 0 || n.appliedIndex < probeIndex);
  if (!violation && behind.length > 0) {
    const states = members.map((n) => {
      const c = n.raft?.core;
      return c ? `${n.id}:${c.role}/t${c.term}/c${c.log.committed}/a${n.appliedIndex}` : `${n.id}:down`;
    });
    fail({
      kind: 'liveness',
      detail: `after ${calmMs} ms of calm a probe write was ${probeIndex ? `applied to ${probeIndex} but not on ${behind.map((n) => n.id)}` : 'never confirmed'} (${states.join(' ')})`,
    });
  }
  if (!violation) forwards?.finish();
  if (!violation) events?.finish();
  if (!violation) {
    const r = checkLinearizability(kvModel, history, { budget: LINEARIZABILITY_BUDGET });
    if (!r.ok) fail({ kind: r.timedOut ? 'linearizability-budget' : 'linearizability', detail: r.explanation ?? `key ${r.key ?? '?'}` });
  }
  return {
    seed: opts.seed,
    nodes: opts.nodes,
    violation,
    trace: trace.slice(-keep),
    steps,
    elections,
    snapshots,
    commits: ledger.size,
    ops: history.length,
    lockGrants: locks?.stats.grants ?? 0,
    taskRuns: tenures?.runs ?? 0,
    leaderWork:
      level === 'runtime'
        ? {
            forwards: forwards!.stats.calls,
            forwardRuns: forwards!.stats.ran,
            fires: fires?.runs ?? 0,
            eventsPublished: events!.published,
            eventsDelivered: events!.delivered,
            eventGaps: events!.gaps,
            settled: settles!.stats.watched,
            longestSettleMs: Math.round(settles!.stats.longestMs),
          }
        : null,
    targeted: { ...network.targetedHits },
    leaseAfterHealMs: leaseAfterHeal === null ? null : Math.round(leaseAfterHeal),
    membership:
      changes && checks
        ? {
            proposed: changes.stats.proposed,
            refused: changes.stats.refused,
            committed: checks.changes,
            twoVoterTries: changes.stats.twoVoterTries,
            retired: changes.stats.retired,
            finalVoters: votersOf(checks.latest().membership).length,
            finalLearners: checks.latest().membership.members.length - votersOf(checks.latest().membership).length,
          }
        : null,
    profile: `${level} ${describeProfile(profile)} ${describeLeaderWork(work)}${mem ? ` ${describeMembership(mem)}` : ''}`,
  };
}

/** Lets every promise callback the last event started run to completion before the next event. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function describeMessage(m: Message): string {
  const parts = [`${MessageType[m.type]} t${m.term}`];
  if (m.index || m.logTerm) parts.push(`i${m.index}/lt${m.logTerm}`);
  if (m.entries.length) parts.push(`ents[${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}]`);
  if (m.commit) parts.push(`c${m.commit}`);
  if (m.reject) parts.push(`REJECT hint${m.rejectHint}`);
  if (m.context) parts.push(`ctx=${m.context}`);
  if (m.snapshot) parts.push(`snap@${m.snapshot.meta.index} ${m.snapshot.offset}/${m.snapshot.total}`);
  return parts.join(' ');
}
