/** IPC between a test (or benchmark) and a node process running test/e2e/node-main. */
export type NodeRequest = { readonly id: number } & (
  | { readonly op: 'status' }
  | { readonly op: 'put'; readonly key: string; readonly value: unknown }
  | { readonly op: 'get'; readonly key: string; readonly consistency?: 'local' | 'linearizable' }
  | { readonly op: 'cas'; readonly key: string; readonly expectedVersion: number; readonly value: unknown }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'waitForLeader'; readonly timeout?: number }
  | { readonly op: 'transfer'; readonly to?: string }
  | {
      readonly op: 'writeLoad';
      readonly writers: number;
      readonly durationMs: number;
      readonly keyPrefix: string;
      /** Stop once this many writes were acknowledged in total (all writers together). */
      readonly maxWrites?: number;
      /** Write a string of this many bytes instead of the loop counter. */
      readonly valueBytes?: number;
      /** Also return the start and end time (epoch ms) of each acknowledged write. */
      readonly detail?: boolean;
    }
  | {
      readonly op: 'readLoad';
      readonly readers: number;
      readonly durationMs: number;
      /** Read these keys round-robin. */
      readonly keys: readonly string[];
      readonly consistency?: 'local' | 'linearizable';
    }
  /** Leadership as the coordinator sees it right now (hasLease catches up the clock first), with this process's time. */
  | { readonly op: 'probe' }
  /** status() taken right after createCluster returned: what the node recovered from its dataDir. */
  | { readonly op: 'bootStatus' }
  /** Reads every key after one read barrier (linearizable) or locally; versions by key, 0 for absent. */
  | { readonly op: 'readKeys'; readonly keys: readonly string[]; readonly consistency?: 'local' | 'linearizable' }
  /**
   * Blocks this process's event loop for `ms` (as a long GC pause or a synchronous handler would), then reports
   * status() and hasLease() from the same callback, before any timer could run.
   */
  | { readonly op: 'stall'; readonly ms: number }
  /**
   * `workers` concurrent loops of `locks.acquire(name, { ttl })` then `release()` for `durationMs`: one name per
   * worker (`${namePrefix}${worker}`), or all on `namePrefix` when `shared`.
   */
  | {
      readonly op: 'lockLoad';
      readonly workers: number;
      readonly durationMs: number;
      readonly namePrefix: string;
      readonly shared?: boolean;
      readonly ttl?: number;
    }
  /** process.memoryUsage(), after a full GC when `gc` is set and the process runs with --expose-gc. */
  | { readonly op: 'memory'; readonly gc?: boolean }
  | { readonly op: 'stop' }
  /** locks.acquire(name, { ttl, wait }); the lock stays held in the node process (renewing itself) until lockRelease. */
  | { readonly op: 'lockAcquire'; readonly name: string; readonly ttl: number; readonly wait: number }
  /** DistributedLock.held for the lock acquired with `token`, and when it was read; false for an unknown token. */
  | { readonly op: 'lockHeld'; readonly name: string; readonly token: number }
  /** Releases the lock acquired with `token` and forgets it. */
  | { readonly op: 'lockRelease'; readonly name: string; readonly token: number }
  /** Leader-work mode only (CATGA_TEST_APP=leader-work): executes the chaos command `commandId` on the CommandBus. */
  | { readonly op: 'command'; readonly commandId: string }
  /** Leader-work mode only: publishes the cluster event with number `n` on the EventBus; answers its log index. */
  | { readonly op: 'publish'; readonly n: number }
  /** The members as this node knows them (coordinator.members, as plain objects). */
  | { readonly op: 'members' }
  /** coordinator.members.add/remove/promote/demote. */
  | {
      readonly op: 'memberChange';
      readonly change: 'add' | 'remove' | 'promote' | 'demote';
      readonly member: string;
      readonly address?: string;
      readonly role?: 'voter' | 'learner';
    }
  /** coordinator.membershipHistory(). */
  | { readonly op: 'membershipHistory' }
  /** coordinator.publishEvent(name, payload) without Nest. */
  | { readonly op: 'publishEvent'; readonly name: string; readonly payload: unknown }
  /** The cluster events this node delivered so far (delivery starts at boot), as `index:name` in delivery order. */
  | { readonly op: 'deliveredEvents' }
  /** ClusterHealthIndicator.isReady() and isLive(), as the probes of `${healthPath}/ready` and `/live` answer them. */
  | { readonly op: 'probes' }
  /** ClusterCoordinator.eventPosition: the index of the last cluster event this node delivered (or gave up on). */
  | { readonly op: 'eventPosition' }
  /**
   * Benchmarks: `count` coordinator.publishEvent calls named `${namePrefix}${i}`, open loop at `ratePerSec` (each
   * started on its due time whether or not the earlier ones completed), each start time taken with epochMs() just
   * before the call. Answers once every publish settled. With `eventBusFirstN` (leader-work mode only) each is instead
   * an EventBus.publish of the app's @ClusterEvent numbered eventBusFirstN + i, delivered to its @EventsHandler.
   */
  | { readonly op: 'publishEvents'; readonly count: number; readonly ratePerSec: number; readonly namePrefix: string; readonly eventBusFirstN?: number }
  /** Benchmarks: epochMs() at which this node's deliverEvents sink got each event whose name starts with `namePrefix`. */
  | { readonly op: 'eventDeliveryTimes'; readonly namePrefix: string }
  /** Starts a snapshot now, whatever the thresholds; answers whether one started. */
  | { readonly op: 'snapshotNow' }
  /**
   * Benchmarks: `warmup` untimed, then `count` timed coordinator.requestLeader calls on BENCH_ECHO_CHANNEL (every
   * node serves it from boot, answering its own id), one at a time, each waiting at most `timeoutMs`.
   */
  | { readonly op: 'forwardLoad'; readonly count: number; readonly warmup: number; readonly timeoutMs: number }
);

/** The request channel node-main serves for forwardLoad: answers the id of the node that ran the handler. */
export const BENCH_ECHO_CHANNEL = 'catga-bench-echo';

export type NodeReply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

export type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** Epoch ms with sub-ms precision, comparable between processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface WriteLoadResult {
  /** Latency of each acknowledged write, µs, in completion order. */
  readonly latencies: number[];
  /** Keys whose put was acknowledged. */
  readonly acked: string[];
  readonly errors: number;
  /** Errors by name. */
  readonly errorNames: Record<string, number>;
  readonly startedAt: number;
  readonly endedAt: number;
  /** The longest time any writer went without an acknowledgement (from the start, between acks, until the end), ms. */
  readonly maxGapMs: number;
  /** With `detail`: epoch ms when each acknowledged write started and ended, parallel to `acked`. */
  readonly startAt?: number[];
  readonly endAt?: number[];
}

export interface ReadLoadResult {
  /** Latency of each successful read, µs. */
  readonly latencies: number[];
  readonly errors: number;
  readonly errorNames: Record<string, number>;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface ProbeResult {
  readonly nodeId: string;
  /** status().isLeader / status().leaseValid: the core's view, without catching up its clock. */
  readonly isLeader: boolean;
  readonly leaseValid: boolean;
  /** ClusterCoordinator.hasLease(): what leader-only code checks (the clock is caught up first). */
  readonly hasLease: boolean;
  readonly leaderId: string;
  readonly term: number;
  /** epochMs() in the node process when it answered. */
  readonly at: number;
  /**
   * While hasLease: an upper bound (epoch ms) on when this lease ends if nothing more is heard — the time of the
   * quorum-th most recent message from the followers plus the lease length. A lease rests on a stamp the leader sent
   * no later than the reply that acknowledged it arrived, and lasts leaseTicks from that stamp. Null otherwise.
   */
  readonly leaseBound: number | null;
  /** leaseTicks × tickMs for this node's options. */
  readonly leaseMs: number;
}

export interface ReadKeysResult {
  /** Version by key; 0 when absent. */
  readonly versions: Record<string, number>;
  readonly missing: string[];
}

export interface StallResult {
  /** probe() just before the stall. */
  readonly before: ProbeResult;
  /** status() right after it, and hasLease() right after that. */
  readonly statusAfter: {
    readonly isLeader: boolean;
    readonly leaseValid: boolean;
    readonly term: number;
    readonly leaderId: string;
  };
  readonly hasLeaseAfter: boolean;
  /** epochMs() when status() was read after the stall. */
  readonly at: number;
}

export interface LockLoadResult {
  /** acquire + release of each completed round, µs. */
  readonly latencies: number[];
  /** The acquire alone of each completed round, µs. */
  readonly acquireLatencies: number[];
  readonly errors: number;
  readonly errorNames: Record<string, number>;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface MemoryResult {
  /** Bytes, as process.memoryUsage() reports them. */
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** Whether a full GC ran just before (requested and available). */
  readonly gcRan: boolean;
  /** epochMs() when measured. */
  readonly at: number;
}

export interface LockAcquireResult {
  readonly token: number;
  /** epochMs() in the node process when acquire resolved: from here on it believes it holds the lock. */
  readonly at: number;
}

export interface LockHeldResult {
  readonly held: boolean;
  /** epochMs() in the node process when `held` was read. */
  readonly at: number;
}

/** The chaos command's handler ran on `node` at `at` (epochMs() there) and returned. */
export interface CommandResult {
  readonly node: string;
  readonly at: number;
}

export interface PublishResult {
  /** The log index the event was committed at: eventIndex() on every node. */
  readonly index: number;
}

export interface EventPositionResult {
  readonly position: number;
}

/** The readiness and liveness answers of ClusterHealthIndicator: status 'up' or 'down', with the reason when down. */
export interface ProbesResult {
  readonly ready: { readonly status: 'up' | 'down'; readonly message?: string };
  readonly live: { readonly status: 'up' | 'down'; readonly message?: string };
}

/** The answer of publishEvents: parallel arrays, in publish order. */
export interface PublishEventsResult {
  readonly names: string[];
  /** epochMs() just before each publishEvent call. */
  readonly startAt: number[];
  /** The committed log index of each event, or -1 when its publish failed. */
  readonly indexes: number[];
  /** epochMs() when each publishEvent call resolved (committed), or -1 when it failed. */
  readonly ackAt: number[];
  readonly errors: number;
  readonly errorNames: Record<string, number>;
}

/** The answer of eventDeliveryTimes: epochMs() of delivery by event name. */
export type EventDeliveryTimesResult = Record<string, number>;

/** The answer of forwardLoad. */
export interface ForwardLoadResult {
  /** Latency of each timed request that was answered, µs, in order. */
  readonly latencies: number[];
  readonly errors: number;
  readonly errorNames: Record<string, number>;
  /** epochMs() around the timed requests. */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Timed requests by the node whose handler answered them: more than one key means leadership moved. */
  readonly servedBy: Record<string, number>;
}
