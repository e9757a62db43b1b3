import { MessageType, type Entry, type Message, type RaftConstructor, type ReadOnlyMode } from '../../lib/raft/index.js';
import { EventQueue } from './event-queue.js';
import { checkInvariants, LogLedger, type Violation } from './invariants.js';
import { decodeCommand, encodeCommand } from './kv-machine.js';
import { checkLinearizability, type Operation } from './linearizability.js';
import { kvModel, type KvInput, type KvOutput } from './kv-model.js';
import { Prng } from './prng.js';
import { CALM, SimNetwork, type NetworkFaults } from './sim-network.js';
import { SimNode } from './sim-node.js';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** A deliberately broken core, for the checker self-test. */
  readonly core?: RaftConstructor;
  /** Simulated ms of faults, then ms of calm in which the cluster must recover. */
  readonly faultMs?: number;
  readonly calmMs?: number;
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
  readonly commits: number;
  readonly ops: number;
  readonly profile: string;
}

const TICK_MS = 10;
const ELECTION_TICK = 15;
const HEARTBEAT_TICK = 5;
const MAX_DRIFT = 0.1;
const OP_TIMEOUT_MS = 1000;
const KEYS = ['a', 'b', 'c'];
const TRACE_KEEP = 400;

interface PendingOp {
  readonly client: number;
  readonly op: number;
  readonly input: KvInput;
  readonly call: number;
  readonly node: SimNode;
  /** For writes: the log position the leader assigned. */
  readonly index?: number;
  done: boolean;
}

/** A seed's fault profile, drawn from the seed itself so every seed explores a different mix. */
interface Profile {
  readonly net: NetworkFaults;
  readonly crashEvery: number;
  readonly partitionEvery: number;
  readonly transferEvery: number;
  /** Chance that a newly elected leader is crashed within a few ms, before its first entries spread. */
  readonly crashNewLeader: number;
  /** Replays the Raft paper's Figure 8 pattern over and over (see figure8Nemesis). */
  readonly figure8: boolean;
  readonly snapshotEvery: number;
  readonly readOnly: ReadOnlyMode;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly clients: number;
}

function drawProfile(rng: Prng): Profile {
  const figure8 = rng.chance(0.2);
  return {
    figure8,
    net: {
      drop: rng.pick([0, 0.01, 0.05, 0.2]),
      duplicate: rng.pick([0, 0.02, 0.1]),
      delayMin: 0.1,
      delayMax: rng.pick([1, 5, 40]),
    },
    crashEvery: rng.pick([Infinity, 150, 400, 1500]),
    partitionEvery: rng.pick([Infinity, 60, 300, 1000]),
    transferEvery: rng.pick([Infinity, 500, 2000]),
    crashNewLeader: rng.pick([0, 0, 0.3, 0.6]),
    snapshotEvery: rng.pick([4, 16, 1000]),
    readOnly: rng.pick(['safe', 'lease'] as const),
    // Figure 8 needs an old entry acknowledged apart from the new leader's no-op: small messages split them.
    maxSizePerMsg: figure8 ? 40 : rng.pick([40, 1024 * 1024]),
    maxInflightMsgs: rng.pick([1, 4, 256]),
    clients: rng.int(2, 6),
  };
}

function describe(p: Profile): string {
  const n = p.net;
  return (
    `drop=${n.drop} dup=${n.duplicate} delay<=${n.delayMax}ms crash/${p.crashEvery} partition/${p.partitionEvery} ` +
    `transfer/${p.transferEvery} figure8=${p.figure8} crashNewLeader=${p.crashNewLeader} snapEvery=${p.snapshotEvery} reads=${p.readOnly} msgBytes=${p.maxSizePerMsg} ` +
    `inflight=${p.maxInflightMsgs} clients=${p.clients}`
  );
}

/**
 * One seeded run: N nodes of the real core over a fake network and crash-losable disks, a nemesis, and KV clients.
 * Every event is followed by the safety checks; the end adds liveness and linearizability.
 */
export function runSimulation(opts: SimOptions): SimResult {
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
    if (!violation) {
      violation = v;
      log(() => `VIOLATION ${v.kind}: ${v.detail}`);
    }
  };

  const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
  const byId = new Map<string, SimNode>();
  const netRng = rng.fork();
  const network = new SimNetwork(queue, netRng, (m: Message) => {
    const n = byId.get(m.to);
    if (!n?.alive) return;
    log(() => `${m.from}->${m.to} ${describeMessage(m)}`);
    n.input((r) => r.step(m));
  });

  const history: Operation<KvInput, KvOutput>[] = [];
  const pendingWrites = new Map<SimNode, Map<number, PendingOp>>();
  const pendingReads = new Map<string, PendingOp>();
  let elections = 0;
  /** The log index at which the calm phase's probe write was first applied anywhere. */
  let probeIndex = 0;

  const complete = (p: PendingOp, output: KvOutput | null) => {
    if (p.done) return;
    p.done = true;
    if (output === null) {
      if (p.input.op !== 'get') history.push({ clientId: p.client, input: p.input, call: p.call, output: { unknown: true }, return: Infinity });
    } else {
      history.push({ clientId: p.client, input: p.input, call: p.call, output, return: queue.now });
    }
    log(() => `client ${p.client} op ${p.op} ${JSON.stringify(p.input)} -> ${output ? JSON.stringify(output) : 'unknown'}`);
  };

  const hooks = {
    send: (m: Message) => network.send(m),
    applied: (node: SimNode, e: Entry) => {
      const v = ledger.applied(node.id, e);
      if (v) fail(v);
      const mine = pendingWrites.get(node)?.get(e.index);
      if (e.data.length === 0) {
        if (mine) complete(mine, null);
        return;
      }
      const cmd = decodeCommand(e.data);
      const out = node.kv.apply(cmd.input);
      if (cmd.client === -1 && probeIndex === 0) probeIndex = e.index;
      if (mine) {
        pendingWrites.get(node)!.delete(e.index);
        complete(mine, mine.client === cmd.client && mine.op === cmd.op ? out : null);
      }
    },
    readReady: (node: SimNode, rs: { index: number; context: string }) => {
      const p = pendingReads.get(rs.context);
      if (!p || p.node !== node) return;
      pendingReads.delete(rs.context);
      complete(p, node.kv.apply(p.input));
    },
    softState: (node: SimNode, s: { leader: string; role: string; term: number }) => {
      log(() => `${node.id} is ${s.role} term ${s.term} leader ${s.leader || '-'}`);
      if (s.role !== 'leader') return;
      elections++;
      const v = ledger.leaderElected(node.id, s.term, node.raft!.core.log);
      if (v) fail(v);
      onNewLeader(node);
    },
  };

  const nodeRng = rng.fork();
  for (const id of ids) {
    const skew = nodeRng.range(-0.9 * MAX_DRIFT, 0.9 * MAX_DRIFT);
    const node = new SimNode(
      id,
      {
        config: {
          id,
          voters: ids,
          electionTick: ELECTION_TICK,
          heartbeatTick: HEARTBEAT_TICK,
          maxClockDrift: MAX_DRIFT,
          readOnly: profile.readOnly,
          maxSizePerMsg: profile.maxSizePerMsg,
          maxInflightMsgs: profile.maxInflightMsgs,
        },
        core: opts.core,
        tickMs: TICK_MS * (1 + skew),
        snapshotEvery: profile.snapshotEvery,
      },
      queue,
      nodeRng.fork(),
      hooks,
    );
    byId.set(id, node);
    pendingWrites.set(node, new Map());
    node.boot();
  }
  const nodes = [...byId.values()];
  let onNewLeader: (node: SimNode) => void = () => {};

  const dropPending = (node: SimNode) => {
    for (const p of pendingWrites.get(node)!.values()) complete(p, null);
    pendingWrites.get(node)!.clear();
    for (const [ctx, p] of pendingReads) {
      if (p.node === node) {
        pendingReads.delete(ctx);
        complete(p, null);
      }
    }
  };

  // ---- clients ------------------------------------------------------------------------------------------------
  const clientRng = rng.fork();
  let opSeq = 0;
  const leaderHint = (): SimNode => {
    const leaders = nodes.filter((n) => n.alive && n.raft!.core.role === 'leader');
    if (leaders.length > 0 && clientRng.chance(0.85)) return clientRng.pick(leaders);
    return clientRng.pick(nodes);
  };
  const runClient = (client: number) => {
    const think = () => queue.schedule(clientRng.range(0, 15), () => issue());
    const issue = () => {
      if (queue.now > faultMs + calmMs - OP_TIMEOUT_MS) return;
      const node = leaderHint();
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
      if (!node.alive) {
        think();
        return;
      }
      let pending: PendingOp | null = null;
      if (input.op === 'get') {
        const ctx = `c${client}-${op}`;
        node.input((raft) => {
          if (raft.readIndex(ctx)) {
            pending = { client, op, input, call: queue.now, node, done: false };
            pendingReads.set(ctx, pending);
          }
        });
      } else {
        node.input((raft) => {
          const at = raft.propose([encodeCommand({ client, op, input })]);
          if (at) {
            pending = { client, op, input, call: queue.now, node, index: at.index, done: false };
            pendingWrites.get(node)!.set(at.index, pending);
          }
        });
      }
      if (!pending) {
        think();
        return;
      }
      const p: PendingOp = pending;
      const waitDone = (waited: number) => {
        if (p.done) return think();
        if (waited >= OP_TIMEOUT_MS) {
          if (p.index !== undefined) pendingWrites.get(p.node)!.delete(p.index);
          else pendingReads.delete(`c${client}-${op}`);
          complete(p, null);
          return think();
        }
        queue.schedule(5, () => waitDone(waited + 5));
      };
      queue.schedule(5, () => waitDone(5));
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
  const crash = (n: SimNode, afterSync = false) => {
    if (!n.alive) return;
    log(() => `CRASH ${n.id}${afterSync ? ' after sync' : ''}`);
    n.crash(afterSync);
    dropPending(n);
    queue.schedule(nem.range(20, 600), () => {
      if (n.alive) return;
      log(() => `RESTART ${n.id}`);
      n.boot();
    });
  };
  every(profile.crashEvery, () => {
    // Leaders are crashed more often than followers: that is where uncommitted tails and term changes pile up.
    const leader = nodes.find((x) => x.alive && x.raft!.core.role === 'leader');
    crash(leader && nem.chance(0.5) ? leader : nem.pick(nodes));
  });
  /**
   * Figure 8: isolate leader L and give it an entry nobody else has; when the others elect C, crash C after it wrote
   * its no-op but before sending it; heal, so L returns and leads again. A core that commits L's old-term entry by
   * counting replicas now leaves it committed on a quorum that C (newer last term) can outvote.
   */
  let isolated: SimNode | null = null;
  if (profile.figure8) {
    every(300, () => {
      const leader = nodes.find((x) => x.alive && x.raft!.core.role === 'leader');
      if (isolated || !leader || network.hasCuts()) return;
      isolated = leader;
      network.partition([[leader.id], ids.filter((i) => i !== leader.id)]);
      log(() => `FIGURE8 isolate ${leader.id} with a fresh entry`);
      leader.input((r) => r.propose([encodeCommand({ client: -2, op: ++opSeq, input: { op: 'put', key: 'f8', value: 'x' } })]));
      queue.schedule(1000, () => {
        if (isolated !== leader) return;
        isolated = null; // nobody else was elected in time; start over
        network.heal();
      });
    });
  }
  onNewLeader = (node) => {
    if (queue.now >= faultMs) return;
    if (isolated && node !== isolated) {
      isolated = null;
      queue.schedule(0, () => {
        crash(node, true); // runs before the disk finishes the Ready that holds the no-op and its App messages
        network.heal();
      });
      return;
    }
    if (nem.chance(profile.crashNewLeader)) queue.schedule(nem.range(0, 4), () => crash(node));
  };
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
      const leader = nodes.find((n) => n.alive && n.raft!.core.role === 'leader');
      const lone = leader?.id ?? shuffled[0]!;
      network.partition([[lone], ids.filter((i) => i !== lone)]);
      log(() => `ISOLATE ${lone}`);
    } else {
      network.cutOneWay(shuffled[0]!, shuffled[1]!);
      log(() => `CUT ${shuffled[0]}->${shuffled[1]}`);
    }
  });
  every(profile.transferEvery, () => {
    const leader = nodes.find((n) => n.alive && n.raft!.core.role === 'leader');
    if (!leader) return;
    const to = nem.pick(ids.filter((i) => i !== leader.id));
    log(() => `TRANSFER ${leader.id} -> ${to}`);
    leader.input((r) => r.transferLeader(to));
  });

  // ---- calm: heal everything; the cluster must elect a leader and commit a probe everywhere --------------------
  queue.schedule(faultMs, () => {
    log(() => 'CALM: heal, restart all');
    network.heal();
    network.faults = CALM;
    for (const n of nodes) if (!n.alive) n.boot();
    const propose = () => {
      if (probeIndex > 0) return;
      const leader = nodes.find((n) => n.alive && n.raft!.core.role === 'leader');
      leader?.input((r) => r.propose([encodeCommand({ client: -1, op: ++opSeq, input: { op: 'put', key: 'probe', value: 'x' } })]));
      queue.schedule(300, propose);
    };
    queue.schedule(0, propose);
  });

  // ---- run ----------------------------------------------------------------------------------------------------
  const end = faultMs + calmMs;
  const seenCommit = new Map<string, number>();
  let steps = 0;
  while (!violation && queue.runNext(end)) {
    steps++;
    const v = checkInvariants(nodes, steps % 64 === 0, seenCommit);
    if (v) fail(v);
  }
  if (!violation) {
    const v = checkInvariants(nodes, true, seenCommit);
    if (v) fail(v);
  }
  const behind = nodes.filter((n) => probeIndex === 0 || n.appliedIndex < probeIndex);
  if (!violation && behind.length > 0) {
    const states = nodes.map((n) => `${n.id}:${n.raft!.core.role}/t${n.raft!.core.term}/c${n.raft!.core.log.committed}/a${n.appliedIndex}`);
    fail({
      kind: 'liveness',
      detail: `after ${calmMs} ms of calm the probe write (index ${probeIndex || 'none'}) is not applied on ${behind.map((n) => n.id)} (${states.join(' ')})`,
    });
  }
  if (!violation) {
    for (const p of pendingWrites.values()) for (const op of p.values()) complete(op, null);
    const r = checkLinearizability(kvModel, history, { budget: 2_000_000 });
    if (!r.ok) {
      fail({
        kind: r.timedOut ? 'linearizability-budget' : 'linearizability',
        detail: `key ${r.key ?? '?'}: ${r.explanation ?? 'no linearization exists'}`,
      });
    }
  }
  return {
    seed: opts.seed,
    nodes: opts.nodes,
    violation,
    trace: trace.slice(-keep),
    steps,
    elections,
    commits: ledger.size,
    ops: history.length,
    profile: describe(profile),
  };
}

function describeMessage(m: Message): string {
  const t = `${MessageType[m.type]} t${m.term}`;
  const parts = [t];
  if (m.index || m.logTerm) parts.push(`i${m.index}/lt${m.logTerm}`);
  if (m.entries.length) parts.push(`ents[${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}]`);
  if (m.commit) parts.push(`c${m.commit}`);
  if (m.reject) parts.push(`REJECT hint${m.rejectHint}`);
  if (m.context) parts.push(`ctx=${m.context}`);
  if (m.snapshot) parts.push(`snap@${m.snapshot.meta.index} ${m.snapshot.offset}/${m.snapshot.total}`);
  return parts.join(' ');
}
