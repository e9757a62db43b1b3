import type { Subscription } from 'rxjs';
import type { Gauge, Registry } from 'prom-client';
import type { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { clusterOptionsOf, ClusterOptionsError, resolveClusterOptions } from '../../cluster/options.js';
import type { RuntimeStatus } from '../../cluster/raft-runtime.js';
import type { ClusterModuleOptions, MetricsRegistry } from '../interfaces/cluster-module-options.interface.js';
import type { NodeMetrics } from './node-metrics.js';

type PromClient = typeof import('prom-client');

const ROLES = ['leader', 'follower', 'pre-candidate', 'candidate'] as const;
/** A durable write is a write plus fdatasync: sub-millisecond on good SSDs, tens of ms on busy or network disks. */
const SYNC_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Proposals and forwards: a round trip or two plus an fsync, up to the request timeout. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * The catga_* metrics in one registry, shared by every node that reports into it: several apps in one process (tests)
 * cannot register a name twice, so each series carries a `node` label instead. State gauges are read from the
 * nodes at scrape time; counters and histograms are fed as things happen.
 */
class MetricSet {
  readonly nodes = new Map<string, ClusterCoordinator>();
  readonly proposals;
  readonly proposalSeconds;
  readonly forwardSeconds;
  readonly leaderChanges;
  readonly syncSeconds;
  private readonly names: string[] = [];

  constructor(
    prom: PromClient,
    readonly registry: Registry,
  ) {
    const registers = [registry];
    const nodes = this.nodes;
    const named = <T extends { name: string }>(config: T): T => {
      this.names.push(config.name);
      return config;
    };
    const state = (name: string, help: string, value: (s: RuntimeStatus) => number) =>
      new prom.Gauge(
        named({
          name,
          help,
          labelNames: ['node'] as const,
          registers,
          collect(this: Gauge<'node'>) {
            this.reset();
            for (const [id, c] of nodes) this.set({ node: id }, value(c.status()));
          },
        }),
      );
    state('catga_term', 'Current Raft term on this node.', (s) => s.term);
    state('catga_is_leader', '1 while this node is the leader, else 0.', (s) => (s.isLeader ? 1 : 0));
    state('catga_lease_valid', '1 while this node leads with a lease a quorum confirmed, else 0.', (s) => (s.leaseValid ? 1 : 0));
    state('catga_commit_index', 'Highest log index known to be committed.', (s) => s.commitIndex);
    state('catga_applied_index', 'Highest log index applied to the state machine on this node.', (s) => s.appliedIndex);
    state('catga_last_index', "Index of the last entry in this node's log.", (s) => s.lastIndex);
    state('catga_snapshot_index', 'Log index covered by the latest snapshot.', (s) => s.snapshotIndex);
    new prom.Gauge(
      named({
        name: 'catga_role',
        help: "1 for this node's current Raft role, 0 for the others.",
        labelNames: ['node', 'role'] as const,
        registers,
        collect(this: Gauge<'node' | 'role'>) {
          this.reset();
          for (const [id, c] of nodes) {
            const role = c.status().role;
            for (const r of ROLES) this.set({ node: id, role: r }, r === role ? 1 : 0);
          }
        },
      }),
    );
    new prom.Gauge(
      named({
        name: 'catga_peer_lag_entries',
        help: "Entries a member is behind the leader's last index (reported by the leader only).",
        labelNames: ['node', 'peer'] as const,
        registers,
        collect(this: Gauge<'node' | 'peer'>) {
          this.reset();
          for (const [id, c] of nodes) {
            const s = c.status();
            if (!s.isLeader) continue;
            for (const m of s.members) if (m.matchIndex !== null) this.set({ node: id, peer: m.id }, Math.max(0, s.lastIndex - m.matchIndex));
          }
        },
      }),
    );
    new prom.Gauge(
      named({
        name: 'catga_peer_last_contact_seconds',
        help: 'Seconds since this node last heard from a member (absent: never).',
        labelNames: ['node', 'peer'] as const,
        registers,
        collect(this: Gauge<'node' | 'peer'>) {
          this.reset();
          for (const [id, c] of nodes) {
            for (const m of c.status().members) if (m.id !== id && m.lastContactMs !== null) this.set({ node: id, peer: m.id }, m.lastContactMs / 1000);
          }
        },
      }),
    );
    this.proposals = new prom.Counter(
      named({
        name: 'catga_proposals_total',
        help: 'Proposals made on this node (store writes, locks, events, task ledger), by state module and outcome.',
        labelNames: ['node', 'module', 'outcome'] as const,
        registers,
      }),
    );
    this.proposalSeconds = new prom.Histogram(
      named({
        name: 'catga_proposal_duration_seconds',
        help: 'Time from proposing on this node until the entry applied (or the proposal failed).',
        labelNames: ['node', 'module'] as const,
        buckets: LATENCY_BUCKETS,
        registers,
      }),
    );
    this.forwardSeconds = new prom.Histogram(
      named({
        name: 'catga_forward_duration_seconds',
        help: '@ForwardToLeader round trips from this node to the leader; outcome ok, error (the handler threw) or failed (no answer).',
        labelNames: ['node', 'kind', 'outcome'] as const,
        buckets: LATENCY_BUCKETS,
        registers,
      }),
    );
    this.leaderChanges = new prom.Counter(
      named({
        name: 'catga_leader_changes_total',
        help: 'Leaders this node has seen take office (each new term with a known leader).',
        labelNames: ['node'] as const,
        registers,
      }),
    );
    this.syncSeconds = new prom.Histogram(
      named({
        name: 'catga_fsync_duration_seconds',
        help: "Durable writes: op append is one Ready's entries and hard state (write + one fdatasync), op snapshot a snapshot file.",
        labelNames: ['node', 'op'] as const,
        buckets: SYNC_BUCKETS,
        registers,
      }),
    );
  }

  /** Takes the metrics out of the registry once no node reports into it. */
  release(): void {
    for (const name of this.names) this.registry.removeSingleMetric(name);
  }
}

const sets = new WeakMap<object, MetricSet>();

/** One node's handle on the catga_* metrics: the sink the cluster reports into, labelled with the node's id. */
class PromNodeMetrics implements NodeMetrics {
  private subscription: Subscription | null = null;
  private cluster: ClusterCoordinator | null = null;

  constructor(
    private readonly set: MetricSet,
    readonly nodeId: string,
  ) {}

  get registry(): MetricsRegistry {
    return this.set.registry;
  }

  storageSynced(op: 'append' | 'snapshot', seconds: number): void {
    this.set.syncSeconds.observe({ node: this.nodeId, op }, seconds);
  }

  proposalSettled(module: string, ok: boolean, seconds: number): void {
    this.set.proposals.inc({ node: this.nodeId, module, outcome: ok ? 'ok' : 'error' });
    this.set.proposalSeconds.observe({ node: this.nodeId, module }, seconds);
  }

  forwardSettled(kind: 'command' | 'query', outcome: 'ok' | 'error' | 'failed', seconds: number): void {
    this.set.forwardSeconds.observe({ node: this.nodeId, kind, outcome }, seconds);
  }

  attach(cluster: ClusterCoordinator): void {
    this.cluster = cluster;
    this.set.nodes.set(this.nodeId, cluster);
    let seen = '';
    this.subscription = cluster.leadership$.subscribe((s) => {
      const key = `${s.term}/${s.leaderId}`;
      if (!s.leaderId || key === seen) return;
      seen = key;
      this.set.leaderChanges.inc({ node: this.nodeId });
    });
  }

  detach(): void {
    this.subscription?.unsubscribe();
    // Another app may have taken over this node id in the same registry since (tests restart nodes).
    if (!this.cluster || this.set.nodes.get(this.nodeId) !== this.cluster) return;
    this.cluster = null;
    this.set.nodes.delete(this.nodeId);
    if (this.set.nodes.size > 0) return;
    this.set.release();
    sets.delete(this.set.registry);
  }
}

/**
 * This node's metrics as the `metrics` option asks: null when off, or when left to the default and prom-client is not
 * installed. prom-client is required lazily, so the package loads without it. `served`: a metricsPath is configured,
 * which needs metrics (checked here, before the cluster starts).
 */
export function createNodeMetrics(options: ClusterModuleOptions, served: boolean): NodeMetrics | null {
  const setting = options.metrics;
  const off = (why: string): null => {
    if (served) throw new ClusterOptionsError(`catga-cluster option metricsPath: expected metrics to be on (${why}), or metricsPath: false`);
    return null;
  };
  if (setting === false) return off('they are off: metrics: false');
  if (setting !== undefined && setting !== true && (typeof setting !== 'object' || setting === null)) {
    throw new ClusterOptionsError(`catga-cluster option metrics: expected true, false or { registry }, got ${JSON.stringify(setting)}`);
  }
  const prom = loadPromClient();
  if (!prom) {
    if (setting === undefined) return off('prom-client is not installed');
    throw new ClusterOptionsError('catga-cluster option metrics: expected prom-client to be installed (npm install prom-client), or metrics: false');
  }
  const given = typeof setting === 'object' ? setting.registry : undefined;
  if (given !== undefined && !isRegistry(given)) {
    throw new ClusterOptionsError('catga-cluster option metrics.registry: expected a prom-client Registry (new Registry(), or register)');
  }
  const registry = given ?? prom.register;
  let set = sets.get(registry);
  if (!set) {
    if (registry.getSingleMetric('catga_term')) {
      throw new Error('catga_* metrics are already in this registry, registered by another copy of catga-cluster; give this one its own: metrics: { registry }');
    }
    set = new MetricSet(prom, registry);
    sets.set(registry, set);
  }
  return new PromNodeMetrics(set, resolveClusterOptions(clusterOptionsOf(options)).nodeId);
}

/** Duck-typed: an app's prom-client may be another copy than the one this package resolves. */
function isRegistry(r: unknown): r is Registry {
  const o = r as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && ['metrics', 'registerMetric', 'getSingleMetric', 'removeSingleMetric'].every((k) => typeof o[k] === 'function');
}

/** prom-client, or null when it is not installed (an error inside an installed prom-client is real and thrown). */
function loadPromClient(): PromClient | null {
  try {
    return require('prom-client') as PromClient;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND' && err.message.includes("'prom-client'")) return null;
    throw e;
  }
}
