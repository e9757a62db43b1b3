/**
 * Line charts as SVG text, no dependency: one or more panels side by side, each with linear or log axes, lines with
 * dots, optional dashed lines and horizontal reference lines, and one legend for the whole figure.
 */

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  /** [x, y]; points with a non-finite coordinate are left out. */
  readonly points: readonly (readonly [number, number])[];
}

export interface Axis {
  readonly label: string;
  readonly scale: 'linear' | 'log';
  /** Tick positions; chosen from the data when absent. */
  readonly ticks?: readonly number[];
  /** Text for each tick in `ticks`. */
  readonly tickLabels?: readonly string[];
  /** Domain bounds; from the data (and the ticks) when absent. */
  readonly min?: number;
  readonly max?: number;
}

export interface Reference {
  readonly y: number;
  readonly label: string;
}

export interface Panel {
  readonly title: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly series: readonly Series[];
  readonly references?: readonly Reference[];
}

export interface Figure {
  readonly title: string;
  readonly panels: readonly Panel[];
  /** Size of one panel, px. */
  readonly panelWidth?: number;
  readonly panelHeight?: number;
  /** A line under the title (what was measured, when). */
  readonly subtitle?: string;
}

const MARGIN = { left: 64, right: 16, top: 30, bottom: 46 };
const HEADER = 58;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(x: number): string {
  return Number(x.toFixed(1)).toString();
}

/** A tick label: 1 234, 12.5, 0.25, 1k, 10k. */
export function formatTick(v: number): string {
  if (v >= 10_000) return `${num(v / 1000)}k`;
  if (v >= 1000) return v.toLocaleString('en-US').replace(/,/g, ' ');
  if (v >= 10 || Number.isInteger(v)) return String(Math.round(v));
  return String(Number(v.toPrecision(2)));
}

/** The smallest of 1, 2, 5 × 10^k that splits `span` into at most about `count` steps. */
function niceStep(span: number, count: number): number {
  const mag = 10 ** Math.floor(Math.log10(span / Math.max(1, count)));
  return [1, 2, 5, 10].map((m) => m * mag).find((step) => span / step <= count + 0.5)!;
}

interface Scale {
  readonly map: (v: number) => number;
  readonly ticks: readonly number[];
  readonly labels: readonly string[];
}

function scaleFor(axis: Axis, values: readonly number[], from: number, to: number): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (axis.scale === 'linear' || v > 0));
  const given = axis.ticks ?? [];
  let lo = axis.min ?? Math.min(...finite, ...given);
  let hi = axis.max ?? Math.max(...finite, ...given);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = axis.scale === 'log' ? [1, 10] : [0, 1];
  let ticks: number[];
  if (axis.scale === 'log') {
    if (axis.min === undefined) lo = 10 ** Math.floor(Math.log10(lo));
    if (axis.max === undefined) hi = 10 ** Math.ceil(Math.log10(hi));
    if (hi <= lo) hi = lo * 10;
    ticks = axis.ticks ? [...axis.ticks] : [];
    if (!axis.ticks) {
      const decades = Math.round(Math.log10(hi / lo));
      for (let d = lo; d <= hi * 1.0001; d *= 10) {
        ticks.push(d);
        if (decades <= 2 && d * 2 < hi) ticks.push(d * 2, d * 5);
      }
      ticks = ticks.filter((t) => t <= hi * 1.0001).sort((a, b) => a - b);
    }
    const l0 = Math.log(lo);
    const span = Math.log(hi) - l0;
    return { map: (v) => from + ((Math.log(v) - l0) / span) * (to - from), ticks, labels: axis.tickLabels ?? ticks.map(formatTick) };
  }
  if (axis.min === undefined) lo = Math.min(0, lo);
  if (hi <= lo) hi = lo + 1;
  if (axis.ticks) ticks = [...axis.ticks];
  else {
    const step = niceStep(hi - lo, 5);
    if (axis.max === undefined) hi = Math.ceil(hi / step) * step;
    ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step / 1e6; t += step) ticks.push(Number(t.toPrecision(12)));
  }
  return { map: (v) => from + ((v - lo) / (hi - lo)) * (to - from), ticks, labels: axis.tickLabels ?? ticks.map(formatTick) };
}

function panelSvg(p: Panel, ox: number, oy: number, w: number, h: number): string {
  const x0 = ox + MARGIN.left;
  const x1 = ox + w - MARGIN.right;
  const y0 = oy + h - MARGIN.bottom;
  const y1 = oy + MARGIN.top;
  const points = p.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = scaleFor(p.x, points.map(([x]) => x), x0, x1);
  const ys = scaleFor(p.y, [...points.map(([, y]) => y), ...(p.references ?? []).map((r) => r.y)], y0, y1);
  const out: string[] = [];
  out.push(`<text x="${num((x0 + x1) / 2)}" y="${num(oy + 18)}" text-anchor="middle" font-size="13" font-weight="600">${esc(p.title)}</text>`);
  ys.ticks.forEach((t, i) => {
    const y = num(ys.map(t));
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${x0 - 6}" y="${y}" dy="0.32em" text-anchor="end" font-size="11" fill="#4b5563">${esc(ys.labels[i] ?? '')}</text>`);
  });
  xs.ticks.forEach((t, i) => {
    const x = num(xs.map(t));
    out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + 4}" stroke="#9ca3af"/>`);
    out.push(`<text x="${x}" y="${y0 + 16}" text-anchor="middle" font-size="11" fill="#4b5563">${esc(xs.labels[i] ?? '')}</text>`);
  });
  out.push(`<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#9ca3af"/>`);
  out.push(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#9ca3af"/>`);
  out.push(`<text x="${num((x0 + x1) / 2)}" y="${y0 + 36}" text-anchor="middle" font-size="12" fill="#374151">${esc(p.x.label)}</text>`);
  const ly = num((y0 + y1) / 2);
  out.push(`<text x="${ox + 14}" y="${ly}" text-anchor="middle" font-size="12" fill="#374151" transform="rotate(-90 ${ox + 14} ${ly})">${esc(p.y.label)}</text>`);
  for (const r of p.references ?? []) {
    const y = num(ys.map(r.y));
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#dc2626" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${x1 - 2}" y="${y}" dy="-0.4em" text-anchor="end" font-size="10" fill="#dc2626">${esc(r.label)}</text>`);
  }
  for (const s of p.series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (p.y.scale === 'linear' || y > 0));
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${num(xs.map(x))},${num(ys.map(y))}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const [x, y] of pts) {
      out.push(`<circle cx="${num(xs.map(x))}" cy="${num(ys.map(y))}" r="3" fill="${s.dashed ? '#fff' : s.color}" stroke="${s.color}" stroke-width="1.5"/>`);
    }
  }
  return out.join('\n');
}

/** The figure's SVG text: title, legend (every distinct series name), panels left to right. */
export function figure(f: Figure): string {
  const w = f.panelWidth ?? 420;
  const h = f.panelHeight ?? 300;
  const width = w * f.panels.length;
  const height = HEADER + h;
  const legend = new Map<string, Series>();
  for (const p of f.panels) for (const s of p.series) if (!legend.has(s.name)) legend.set(s.name, s);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="20" font-size="15" font-weight="700" fill="#111827">${esc(f.title)}</text>`,
  ];
  if (f.subtitle) out.push(`<text x="12" y="36" font-size="11" fill="#6b7280">${esc(f.subtitle)}</text>`);
  let lx = 12;
  for (const s of legend.values()) {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="48" y2="48" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 27}" y="48" dy="0.32em" font-size="11" fill="#374151">${esc(s.name)}</text>`);
    lx += 40 + s.name.length * 6.2;
  }
  f.panels.forEach((p, i) => out.push(panelSvg(p, i * w, HEADER, w, h)));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
