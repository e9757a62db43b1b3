/**
 * The pictures in docs/benchmarks.md, drawn from the results: throughput and p99 against writers, latency quantiles
 * at each writer count, failover and graceful-stop rounds (ours next to etcd), and our memory over many writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Measurement } from './measure.js';
import type { Results } from './results.js';
import { figure, type Panel, type Series } from './svg-chart.js';

const OURS = '#2563eb';
const ETCD = '#ea580c';
const WRITERS = [1, 16, 64, 256] as const;
const QUANTILES = [
  ['p50Ms', 'p50'],
  ['p90Ms', 'p90'],
  ['p99Ms', 'p99'],
  ['p999Ms', 'p99.9'],
  ['maxMs', 'max'],
] as const;

function num(m: Measurement | undefined, key: string): number {
  const x = m?.[key];
  return typeof x === 'number' ? x : Number.NaN;
}

function side(results: Results, metric: string, who: 'ours' | 'etcd'): Measurement | undefined {
  return results[metric]?.[who];
}

function bySide(results: Results, metricOf: (w: number) => string, key: string, dashed: boolean, suffix: string): Series[] {
  return (['ours', 'etcd'] as const).map((who) => ({
    name: `${who}${suffix}`,
    color: who === 'ours' ? OURS : ETCD,
    dashed,
    points: WRITERS.map((w) => [w, num(side(results, metricOf(w), who), key)] as const),
  }));
}

function subtitle(results: Results): string {
  const m = results.writes_c1?.ours ?? Object.values(results)[0]?.ours;
  const at = typeof m?.measuredAt === 'string' ? m.measuredAt.slice(0, 10) : '';
  return `${at}${m?.quick === true ? ' (--quick)' : ''}, ${String(m?.cpus ?? '?')} CPUs; 3 nodes/members on 127.0.0.1, fsync on`;
}

function throughputChart(results: Results): string {
  const x = { label: 'concurrent writers', scale: 'log' as const, ticks: WRITERS, min: 1, max: 256 };
  const panels: Panel[] = [
    {
      title: 'Replicated writes per second',
      x,
      y: { label: 'writes/s', scale: 'linear' },
      series: [...bySide(results, (w) => `writes_c${w}`, 'opsPerSec', false, ' (on the leader)'), ...bySide(results, (w) => `writes_follower_c${w}`, 'opsPerSec', true, ' (via a follower)')],
    },
    {
      title: 'Write latency p99',
      x,
      y: { label: 'ms (log)', scale: 'log' },
      series: [...bySide(results, (w) => `writes_c${w}`, 'p99Ms', false, ' (on the leader)'), ...bySide(results, (w) => `writes_follower_c${w}`, 'p99Ms', true, ' (via a follower)')],
      references: [{ y: 50, label: 'target at 256: 50 ms' }],
    },
  ];
  return figure({ title: 'Writes against concurrent writers', subtitle: subtitle(results), panels });
}

function latencyChart(results: Results): string {
  const panels: Panel[] = WRITERS.map((w) => ({
    title: `${w} writer${w === 1 ? '' : 's'}`,
    x: { label: 'quantile', scale: 'linear', ticks: QUANTILES.map((_, i) => i), tickLabels: QUANTILES.map(([, l]) => l), min: -0.3, max: QUANTILES.length - 0.7 },
    y: { label: 'ms (log)', scale: 'log' },
    series: (['ours', 'etcd'] as const).map((who) => ({
      name: who,
      color: who === 'ours' ? OURS : ETCD,
      points: QUANTILES.map(([key], i) => [i, num(side(results, `writes_c${w}`, who), key)] as const),
    })),
  }));
  return figure({ title: 'Write latency distribution (writers on the leader)', subtitle: subtitle(results), panels, panelWidth: 300, panelHeight: 280 });
}

function roundsOf(m: Measurement | undefined): (readonly [number, number])[] {
  const xs = m?.roundsMs;
  return Array.isArray(xs) ? xs.map((y, i) => [i + 1, y] as const) : [];
}

function failoverChart(results: Results): string {
  const panel = (metric: string, title: string, target: number, label: string): Panel => {
    const n = Math.max(1, roundsOf(side(results, metric, 'ours')).length, roundsOf(side(results, metric, 'etcd')).length);
    const every = Math.ceil(n / 12);
    return {
      title,
      x: { label: 'round', scale: 'linear', min: 0.5, max: n + 0.5, ticks: Array.from({ length: n }, (_, i) => i + 1).filter((r) => (r - 1) % every === 0) },
      y: { label: 'ms', scale: 'linear' },
      series: (['ours', 'etcd'] as const).map((who) => ({ name: who, color: who === 'ours' ? OURS : ETCD, points: roundsOf(side(results, metric, who)) })),
      references: [{ y: target, label }],
    };
  };
  return figure({
    title: 'Leader loss: kill -9 and graceful stop',
    subtitle: subtitle(results),
    panels: [
      panel('failover_ms', 'kill -9 of the leader → first write acknowledged', 250, 'target median 250 ms'),
      panel('graceful_pause_ms', 'SIGTERM of the leader → longest write pause', 30, 'target 30 ms'),
    ],
    panelWidth: 460,
  });
}

function memoryChart(results: Results): string {
  const m = results.rss_growth_mb?.ours;
  const arr = (key: string): number[] => {
    const xs = m?.[key];
    return Array.isArray(xs) ? xs : [];
  };
  const writes = arr('seriesWrites').map((w) => w / 1000);
  const start = arr('rssStartMb');
  const line = (key: string, name: string, color: string, dashed = false): Series => ({
    name,
    color,
    dashed,
    points: [...(start.length > 0 && key === 'seriesRssMaxMb' ? [[0, Math.max(...start)] as const] : []), ...arr(key).map((y, i) => [writes[i]!, y] as const)],
  });
  const panel: Panel = {
    title: 'Largest RSS and heap used among the three nodes',
    x: { label: 'writes (thousands)', scale: 'linear', max: writes.length > 0 ? Math.max(...writes) : undefined },
    y: { label: 'MB', scale: 'linear' },
    series: [line('seriesRssMaxMb', 'RSS', OURS), line('seriesHeapMaxMb', 'heap used (no GC before)', OURS, true)],
    references: start.length > 0 ? [{ y: Math.max(...start) + 50, label: 'start + 50 MB' }] : [],
  };
  return figure({ title: 'Memory over many writes (ours)', subtitle: subtitle(results), panels: [panel], panelWidth: 640 });
}

/** Writes the SVG files into `dir`; returns their paths. */
export function writeCharts(dir: string, results: Results): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    ['throughput.svg', throughputChart(results)],
    ['latency.svg', latencyChart(results)],
    ['failover.svg', failoverChart(results)],
    ['memory.svg', memoryChart(results)],
  ];
  return files.map(([name, svg]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, svg);
    return file;
  });
}
