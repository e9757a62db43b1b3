/**
 * 60 s of chaos on three real node processes (ports 18720–18722, seed 1): kill -9 and restart, SIGSTOP/SIGCONT,
 * leadership transfers and clock-rate skew while kv and lock clients work, and the nodes, Nest apps in the
 * leader-work mode, run forwarded commands, a @SingletonTask and @ClusterEvent deliveries. The kv history must be
 * linearizable, the lock history must pass the fencing checks, the effect logs must pass the leader-work checks, and
 * real work must have happened. Then the same with each node in
 * its own network namespace (ports 18730–18732, seed 2), where the nemesis also cuts links between them: isolates a
 * node, drops one direction of a link, blackholes a node or a link. The same runner as `npm run chaos` (`--netns`);
 * longer runs are in docs/reliability.md. Needs `npm run build` first; the namespace run needs root, iproute2 and
 * iptables and is skipped with the reason elsewhere.
 */
import { NetnsLab } from '../support/netns.js';
import { FAULT_KINDS, PARTITION_KINDS, type FaultKind } from '../chaos/nemesis.js';
import { runChaos, type ChaosOptions, type ChaosSummary } from '../chaos/runner.js';

jest.setTimeout(240_000);

function chaosSuite(options: ChaosOptions, kinds: readonly FaultKind[]): () => void {
  return () => {
    let summary: ChaosSummary;

    beforeAll(async () => {
      summary = await runChaos(options);
      console.log(`e2e chaos${options.partitions ? ' with partitions' : ''}: ${JSON.stringify(summary)}`);
    });

    test('no violation: the kv history is linearizable, every lock and leader-work check passes', () => {
      expect(summary.violations).toEqual([]);
      expect(summary.linearizability.timedOut).toBe(false);
      expect(summary.result).toBe('pass');
    });

    test('real work happened under every kind of fault', () => {
      for (const kind of kinds) expect(summary.faults[kind]).toBeGreaterThan(0);
      for (const op of ['get', 'put', 'cas'] as const) expect(summary.ops[op]?.ok).toBeGreaterThan(100);
      expect(summary.lockGrants).toBeGreaterThan(20);
      expect(summary.fencing.accepted).toBeGreaterThan(20);
      expect(summary.lease.observations).toBeGreaterThan(20);
    });

    test('real leader work happened: forwarded commands, singleton fires, events delivered on every node', () => {
      const work = summary.leaderWork!;
      expect(work.commands.ok).toBeGreaterThan(100);
      expect(work.fires.fires).toBeGreaterThan(50);
      expect(Object.keys(work.events.deliveredByNode)).toHaveLength(options.nodes);
      for (const delivered of Object.values(work.events.deliveredByNode)) expect(delivered).toBeGreaterThan(100);
      expect(work.converged).toBe(true);
    });
  };
}

describe('chaos on 127.0.0.1', chaosSuite({ seed: 1, nodes: 3, seconds: 60, basePort: 18720 }, FAULT_KINDS));

const netnsUnavailable = NetnsLab.unavailable();
if (netnsUnavailable) console.warn(`chaos with network partitions skipped: ${netnsUnavailable}`);
(netnsUnavailable ? describe.skip : describe)(
  `chaos with network partitions${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`,
  chaosSuite({ seed: 2, nodes: 3, seconds: 60, basePort: 18730, partitions: true }, [...FAULT_KINDS, ...PARTITION_KINDS]),
);
