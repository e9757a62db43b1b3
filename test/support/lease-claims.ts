/**
 * Who claimed a leader lease when, across node processes: a poller probes every node, and claims() turns its samples
 * into intervals; overlaps() lists two nodes' intervals that meet — two leaders at once.
 */
import { epochMs, type ProbeResult } from './node-protocol.js';
import type { NodeProcess } from './process-cluster.js';

export interface Sample extends ProbeResult {
  readonly sentAt: number;
}

/**
 * Probes every node every `everyMs`, one probe in flight per node: a stopped node's probe stays unanswered until it
 * resumes, and its answer then tells what it believed right after resuming.
 */
export class LeasePoller {
  readonly samples: Sample[] = [];
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly nodes: readonly NodeProcess[]) {}

  start(everyMs = 10): void {
    this.timer = setInterval(() => {
      for (const n of this.nodes) {
        if (this.inFlight.has(n.id) || !n.running) continue;
        const sentAt = epochMs();
        const p = n
          .request<ProbeResult>({ op: 'probe' }, 10_000)
          .then((r) => void this.samples.push({ ...r, sentAt }))
          .catch(() => undefined)
          .finally(() => this.inFlight.delete(n.id));
        this.inFlight.set(n.id, p);
      }
    }, everyMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all(this.inFlight.values());
  }
}

export interface Claim {
  readonly node: string;
  readonly term: number;
  readonly from: number;
  readonly to: number;
}

/**
 * Intervals in which a node claimed a lease: from a sample that says so until the earlier of its lease bound and the
 * node's next sample (which states its belief afresh). A node's last answer before it was stopped thus stands for
 * it while it is stopped, but no longer than the lease it had could last. `valid` picks the field judged.
 */
export function claims(samples: readonly Sample[], valid: (s: Sample) => boolean): Claim[] {
  const out: Claim[] = [];
  const byNode = new Map<string, Sample[]>();
  for (const s of samples) byNode.set(s.nodeId, [...(byNode.get(s.nodeId) ?? []), s]);
  for (const [node, list] of byNode) {
    list.sort((a, b) => a.at - b.at);
    list.forEach((s, i) => {
      if (!valid(s)) return;
      const next = list[i + 1]?.at ?? Number.POSITIVE_INFINITY;
      out.push({ node, term: s.term, from: s.at, to: Math.max(s.at, Math.min(s.leaseBound ?? s.at, next)) });
    });
  }
  return out;
}

export function overlaps(cs: readonly Claim[]): [Claim, Claim][] {
  const out: [Claim, Claim][] = [];
  for (const a of cs) for (const b of cs) if (a.node < b.node && a.from <= b.to && b.from <= a.to) out.push([a, b]);
  return out;
}
