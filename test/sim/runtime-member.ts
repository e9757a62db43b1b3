import { ClusterCoordinator } from '../../lib/cluster/cluster-coordinator.js';
import { LogProposer, LogStore } from '../../lib/cluster/cluster-store.js';
import { type Clock, type Timers } from '../../lib/io/clock.js';
import { CallTimeoutError, NotSentError, type InboundHandler, type Network } from '../../lib/io/network.js';
import { silentLogger } from '../../lib/cluster/logger.js';
import { RaftRuntime, type RuntimeConfig } from '../../lib/cluster/raft-runtime.js';
import { RequestRouter } from '../../lib/cluster/request-handler.js';
import { ClusterStateMachine, type StateMachineOptions } from '../../lib/cluster/state/cluster-state-machine.js';
import { LeaderForwarding, type ForwardedRun } from '../../lib/cluster/leader-forwarding.js';
import type { BrokenLeaderWork } from './broken-leader-work.js';
import type { LockModule } from '../../lib/cluster/state/lock-module.js';
import type { Entry, Membership, Message, RaftConstructor, RaftNode, Snapshot, SnapshotMeta } from '../../lib/raft/index.js';
import type { AppendFile, Disk } from '../../lib/storage/disk.js';
import { FileStorage } from '../../lib/storage/file-storage.js';
import { NumberFile } from '../../lib/storage/number-file.js';
import type { PersistBatch, RaftStorage, RecoveredState } from '../../lib/storage/raft-storage.js';
import { SimDisk } from '../support/sim-disk.js';
import type { EventQueue } from './event-queue.js';
import type { KvInput, KvOutput } from './kv-model.js';
import { logHolds, newestMembership, type MemberHooks, type SimMember } from './member.js';
import type { Prng } from '../support/prng.js';
import type { SimNetwork } from './sim-network.js';

/** Simulated wall clocks start here (ms since 1970), so entry times look like real ones. */
const WALL_EPOCH = 1_700_000_000_000;

export interface RuntimeMemberOptions {
  readonly config: Omit<RuntimeConfig, 'nodeId'>;
  readonly core?: RaftConstructor;
  /** This node's clock rate relative to simulated real time (1.05 = 5% fast). */
  readonly rate: number;
  /**
   * Rate of the clock the coordinator (locks, tenure signals) measures leases with. Locks assume clocks as good as
   * real ones (within max(50 ms, ttl/10) over a ttl), so this stays near 1 while `rate` stresses Raft's own bound.
   */
  readonly leaseClockRate: number;
  /** This node's wall clock minus simulated real time: the offset NTP leaves between hosts. */
  readonly wallOffsetMs: number;
  readonly requestTimeoutMs: number;
  /** Newest cluster events the replicated state keeps (read at each boot). */
  readonly eventRetention: () => number;
  /** Runs forwarded work on this member when it leads (the sim's stand-in for a command handler). */
  readonly forwardWork: (member: RuntimeMember, run: ForwardedRun) => Promise<unknown>;
  /** A deliberately broken lock table, for the checker self-test. */
  readonly lockModule?: () => LockModule;
  /** Deliberately broken leader-work parts, for the checker self-test. */
  readonly broken?: BrokenLeaderWork;
}

/**
 * A member running the production stack — RaftRuntime, FileStorage on a SimDisk, ClusterStateMachine, the store with
 * its forwarding and sessions — on simulated time and network. Only the disk, network, clock and timers are fake.
 */
export class RuntimeMember implements SimMember {
  private disk: SimDisk;
  private runtime: RaftRuntime | null = null;
  private store: LogStore | null = null;
  private coord: ClusterCoordinator | null = null;
  private fwd: LeaderForwarding | null = null;
  private timers: Timers | null = null;
  private readonly crashListeners = new Set<() => void>();
  private readonly bootListeners = new Set<() => void>();
  private readonly leaderListeners = new Set<() => void>();
  private sm: ClusterStateMachine | null = null;
  private handler: InboundHandler | null = null;
  private incarnation = 0;
  private durable = { index: 0, term: 0 };
  /** What completed writes made durable (the snapshot and the entries after it), for the membership checks. */
  private durableLog: { snapshot: SnapshotMeta | null; entries: Entry[] } = { snapshot: null, entries: [] };
  /** fdatasyncs in flight: a crash before their delay ends loses (part of) what they were to make durable. */
  private readonly syncing = new Set<AppendFile>();
  private readonly outstanding = new Set<(out: KvOutput | null) => void>();
  /** Why the last boot failed, if it did. */
  startFailure: string | null = null;

  constructor(
    readonly id: string,
    private readonly opts: RuntimeMemberOptions,
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly fabric: SimNetwork,
    private readonly peer: (id: string) => RuntimeMember,
    private readonly hooks: MemberHooks,
  ) {
    this.disk = new SimDisk(id);
  }

  get alive(): boolean {
    return this.runtime !== null;
  }

  get raft(): RaftNode | null {
    return this.handler ? this.runtime!.raft : null;
  }

  get appliedIndex(): number {
    return this.sm?.appliedIndex ?? 0;
  }

  /** The coordinator of the running incarnation (locks, leader signal), or null while crashed. */
  get coordinator(): ClusterCoordinator | null {
    return this.coord;
  }

  /** Forwarding to the leader, of the running incarnation; null while crashed. */
  get forwarding(): LeaderForwarding | null {
    return this.fwd;
  }

  /** This node's wall clock (simulated real time plus its offset). */
  wallClock(): number {
    return WALL_EPOCH + this.queue.now + this.opts.wallOffsetMs;
  }

  /** Runs `fn` after `ms` of this node's own clock, unless it crashes first. */
  after(ms: number, fn: () => void): void {
    this.timers?.setTimeout(fn, ms);
  }

  /** Called at every crash: whatever this incarnation's clients believed ends with it. */
  onCrash(fn: () => void): void {
    this.crashListeners.add(fn);
  }

  /** Called at every boot, once the new incarnation has started (its log recovered, its event cursor read). */
  onBoot(fn: () => void): void {
    this.bootListeners.add(fn);
  }

  /** Called whenever this node's leadership or lease changes, in any incarnation. */
  onLeaderChange(fn: () => void): void {
    this.leaderListeners.add(fn);
  }

  durableLast(): { index: number; term: number } {
    return this.durable;
  }

  hasValidLease(): boolean {
    return this.handler !== null && this.runtime!.hasValidLease();
  }

  durableMembership(): Membership {
    return newestMembership(this.durableLog.snapshot, this.durableLog.entries, this.opts.config.membership);
  }

  durableHolds(index: number, term: number): boolean {
    return logHolds(this.durableLog.snapshot, this.durableLog.entries, index, term);
  }

  proposeMembership(next: Membership): boolean {
    const rt = this.runtime;
    if (!rt || !this.handler) return false;
    const before = rt.raft.core.log.lastIndex();
    // Refusals and outcomes show in the logs the checks read; the promise only reports them.
    rt.proposeMembership(next).catch(() => undefined);
    return rt.raft.core.log.lastIndex() > before;
  }

  boot(): void {
    const inc = ++this.incarnation;
    const rate = this.opts.rate;
    const clock: Clock = { now: () => this.queue.now * rate };
    const live = (fn: () => void) => () => {
      if (this.incarnation === inc) fn();
    };
    const timers: Timers = {
      setTimeout: (fn, ms) => {
        let cancelled = false;
        this.queue.schedule(ms / rate, live(() => !cancelled && fn()));
        return { cancel: () => (cancelled = true) };
      },
      setImmediate: (fn) => this.queue.schedule(0, live(fn)),
    };
    const broken = this.opts.broken;
    const sm = new TracedStateMachine((e) => this.hooks.applied(this, e), {
      locks: this.opts.lockModule?.(),
      tasks: broken?.tasks?.(),
      events: broken?.events?.(this.opts.eventRetention()),
      eventRetention: this.opts.eventRetention(),
    });
    const disk = this.delayed(this.disk, timers);
    const storage = this.track(new FileStorage(disk));
    const wallClock = () => this.wallClock();
    let router!: RequestRouter;
    const network = this.endpoint(inc, timers);
    const rng = this.rng.fork();
    const runtime = new RaftRuntime(
      { ...this.opts.config, nodeId: this.id },
      {
        storage,
        network,
        clock,
        timers,
        random: () => rng.next(),
        stateMachine: sm,
        logger: silentLogger,
        onCall: (from, payload) => router.handle(from, payload),
        core: this.opts.core,
      },
    );
    router = new RequestRouter(runtime, wallClock);
    runtime.onLeadershipChange((s) =>
      this.hooks.softState(this, { leader: s.leaderId, role: s.isLeader ? 'leader' : 'follower', term: s.term }),
    );
    const logProposer = new LogProposer({
      runtime,
      network,
      clock,
      timers,
      wallClock,
      clientId: `${this.id}#${inc}`,
      requestTimeoutMs: this.opts.requestTimeoutMs,
    });
    const proposer = broken?.proposer?.(logProposer, timers) ?? logProposer;
    this.runtime = runtime;
    this.sm = sm;
    this.store = new LogStore(proposer, runtime, sm, this.opts.requestTimeoutMs);
    this.coord = new ClusterCoordinator({
      runtime,
      network,
      router,
      stateMachine: sm,
      proposer,
      store: this.store,
      clock: { now: () => this.queue.now * this.opts.leaseClockRate },
      timers,
      electionTimeoutMs: this.opts.config.electionTick * this.opts.config.tickMs,
      clientId: `${this.id}#${inc}`,
      eventCursor: new NumberFile(disk, 'events.cursor'),
    });
    const Forwarding = broken?.forwarding ?? LeaderForwarding;
    this.fwd = new Forwarding(this.coord, {
      channel: 'sim.forward',
      encodeError: (e) => ({ name: (e as Error).name, message: (e as Error).message }),
      decodeError: (w) => Object.assign(new Error((w as Error).message), { name: (w as Error).name }),
    });
    this.fwd.handle((run) => this.opts.forwardWork(this, run));
    this.timers = timers;
    // Registered after the coordinator's own listeners, so its tenure is up to date when these run.
    const notify = live(() => this.leaderListeners.forEach((fn) => fn()));
    runtime.onLeadershipChange(notify);
    runtime.onLeaseChange(notify);
    this.coord.start().then(
      live(() => this.bootListeners.forEach((fn) => fn())),
      (e: unknown) => {
        // The simulator only loses unsynced writes and tears the last one: a node must always come back from that.
        if (this.incarnation === inc) this.startFailure = `${this.id} failed to start: ${(e as Error).message}`;
      },
    );
  }

  crash(afterSync = false): void {
    if (!this.runtime) return;
    if (afterSync) for (const f of this.syncing) void f.sync();
    this.syncing.clear();
    this.disk = this.disk.crash(() => this.rng.next());
    this.incarnation++;
    this.runtime = null;
    this.store = null;
    this.coord = null;
    this.fwd = null;
    this.timers = null;
    for (const fn of this.crashListeners) fn();
    this.sm = null;
    this.handler = null;
    for (const done of this.outstanding) done(null);
    this.outstanding.clear();
  }

  transferLeader(to: string): void {
    this.runtime?.transferLeadership(to);
  }

  submit(input: KvInput, _client: number, _op: number, _timeoutMs: number, done: (out: KvOutput | null) => void): boolean {
    const store = this.store;
    if (!store || !this.handler) return false;
    let settled = false;
    const finish = (out: KvOutput | null) => {
      if (settled) return;
      settled = true;
      this.outstanding.delete(finish);
      done(out);
    };
    this.outstanding.add(finish);
    const run = async (): Promise<KvOutput> => {
      switch (input.op) {
        case 'get': {
          const e = await store.get<string>(input.key, { consistency: 'linearizable' });
          return { ok: true, value: e ? e.value : null, version: e?.version ?? 0 };
        }
        case 'put':
          return { ok: true, version: (await store.put(input.key, input.value)).version };
        case 'delete':
          await store.delete(input.key);
          return { ok: true, version: 0 };
        case 'cas': {
          const r = await store.cas(input.key, input.expectedVersion, input.value);
          return r.ok ? { ok: true, version: r.version } : { ok: false, version: r.version };
        }
      }
    };
    run().then(finish, () => finish(null));
    return true;
  }

  // ---- fakes ----------------------------------------------------------------------------------------------------

  /** This incarnation's view of the fake network. */
  private endpoint(inc: number, timers: Timers): Network {
    const current = () => this.incarnation === inc;
    return {
      listen: async (handler) => {
        if (current()) this.handler = handler;
      },
      sendRaft: (m: Message) => {
        this.fabric.transmitRaft(m, () => this.peer(m.to).deliverRaft(m));
      },
      call: (to, payload, timeoutMs) =>
        new Promise<Uint8Array>((resolve, reject) => {
          const callee = this.peer(to);
          if (!this.fabric.isLinkUp(this.id, to) || !callee.handler) {
            reject(new NotSentError(`no connection to ${to}`));
            return;
          }
          const timer = timers.setTimeout(() => reject(new CallTimeoutError(`no reply from ${to} within ${timeoutMs} ms`)), timeoutMs);
          this.fabric.transmit(
            this.id,
            to,
            () =>
              callee.deliverCall(this.id, payload, (reply) =>
                this.fabric.transmit(to, this.id, () => {
                  if (!current()) return;
                  timer.cancel();
                  resolve(reply);
                }, false),
              ),
            false,
          );
        }),
      close: async () => {},
    };
  }

  private deliverRaft(m: Message): void {
    this.handler?.raft(m);
  }

  private deliverCall(from: string, payload: Uint8Array, reply: (r: Uint8Array) => void): void {
    const h = this.handler;
    if (!h) return;
    const inc = this.incarnation;
    h.call(from, payload).then(
      (r) => this.incarnation === inc && reply(r),
      () => undefined,
    );
  }

  /** Delays each fdatasync by a random disk latency; the data becomes durable only when it completes. */
  private delayed(disk: Disk, timers: Timers): Disk {
    const rng = this.rng;
    const syncing = this.syncing;
    return Object.assign(Object.create(disk) as Disk, {
      openAppend: async (path: string): Promise<AppendFile> => {
        const f = await disk.openAppend(path);
        const wrapped: AppendFile = {
          path: f.path,
          get size() {
            return f.size;
          },
          append: (data) => f.append(data),
          truncate: (length) => f.truncate(length),
          close: () => f.close(),
          sync: () =>
            new Promise<void>((resolve, reject) => {
              syncing.add(f);
              timers.setTimeout(() => {
                syncing.delete(f);
                f.sync().then(resolve, reject);
              }, rng.range(0.05, rng.chance(0.02) ? 20 : 1.5));
            }),
        };
        return wrapped;
      },
    });
  }

  /** Records what each completed persist made durable, for the commit-safety check. */
  private track(storage: FileStorage): RaftStorage {
    const d = (v: { index: number; term: number }) => (this.durable = v);
    const log = () => this.durableLog;
    return {
      open: async (): Promise<RecoveredState> => {
        const r = await storage.open();
        const last = r.entries[r.entries.length - 1];
        d(last ? { index: last.index, term: last.term } : { index: r.snapshot?.meta.index ?? 0, term: r.snapshot?.meta.term ?? 0 });
        this.durableLog = { snapshot: r.snapshot?.meta ?? null, entries: [...r.entries] };
        return r;
      },
      persist: async (b: PersistBatch) => {
        await storage.persist(b);
        const last = b.entries[b.entries.length - 1];
        if (last) d({ index: last.index, term: last.term });
        else if (b.snapshot) d({ index: b.snapshot.meta.index, term: b.snapshot.meta.term });
        if (b.snapshot) {
          this.durableLog = { snapshot: b.snapshot.meta, entries: [] };
          this.hooks.snapshot?.(this, b.snapshot.meta, 'installed');
        }
        const first = b.entries[0];
        if (first) this.durableLog.entries = log().entries.filter((e) => e.index < first.index).concat(b.entries);
      },
      writeSnapshotImage: (s: Snapshot) => storage.writeSnapshotImage(s),
      saveSnapshot: async (s: Snapshot) => {
        this.hooks.snapshot?.(this, s.meta, 'made');
        await storage.saveSnapshot(s);
        const l = log();
        if (s.meta.index > (l.snapshot?.index ?? 0)) this.durableLog = { snapshot: s.meta, entries: l.entries.filter((e) => e.index > s.meta.index) };
      },
      close: () => storage.close(),
    };
  }
}

/** The production state machine, with a hook on every applied entry for the ledger checks. */
class TracedStateMachine extends ClusterStateMachine {
  constructor(
    private readonly onApply: (e: Entry) => void,
    options: StateMachineOptions,
  ) {
    super([], options);
  }

  override apply(entry: Entry): unknown {
    this.onApply(entry);
    return super.apply(entry);
  }
}

