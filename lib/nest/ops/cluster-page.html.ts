import { createHash } from 'node:crypto';

/**
 * The /cluster live page: one self-contained document (inline CSS and JS, no external requests, no build step) that
 * polls the status endpoint every second and plots the last minutes (leader, commits per second, each member's lag) as
 * inline SVG from its own ring buffer of those polls. Everything from the status is put in the page with textContent, never as
 * markup, and the Content-Security-Policy admits only these exact inline blocks (by hash) and same-origin fetches.
 */

const STYLE = `
:root {
  --bg: #f5f7fa; --panel: #ffffff; --ink: #1f2933; --muted: #66788a; --line: #e3e8ee; --soft: #eef2f6;
  --accent: #0f766e; --accent-soft: #e0f2ef; --warn: #b45309; --warn-soft: #fdf3e1; --bad: #b42318; --bad-soft: #fdecea;
  --info: #1d4ed8; --info-soft: #e6edfd;
  --s0: #0f766e; --s1: #1d4ed8; --s2: #9333ea; --s3: #c2410c; --s4: #be185d; --s5: #4d7c0f;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #11161c; --panel: #182028; --ink: #e4e9ee; --muted: #93a1b0; --line: #2a3540; --soft: #202a34;
    --accent: #5eead4; --accent-soft: #123b37; --warn: #fbbf24; --warn-soft: #3b2f12; --bad: #f87171; --bad-soft: #3d1b1b;
    --info: #93b4ff; --info-soft: #1c2a4a;
    --s0: #5eead4; --s1: #93b4ff; --s2: #d8b4fe; --s3: #fdba74; --s4: #f9a8d4; --s5: #bef264;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: center; justify-content: space-between; gap: 16px; padding: 14px 28px; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 600; font-size: 16px; letter-spacing: .2px; white-space: nowrap; }
.logo { width: 12px; height: 12px; border-radius: 50%; background: var(--accent); box-shadow: 0 0 0 4px var(--accent-soft); }
.meta { color: var(--muted); font-size: 13px; }
.meta b { color: var(--ink); font-weight: 600; }
main { max-width: 1180px; margin: 0 auto; padding: 22px 28px 8px; }
.banner { margin: 0 0 18px; padding: 11px 16px; border-radius: 8px; font-weight: 500; border: 1px solid transparent; }
.banner.warn { background: var(--warn-soft); color: var(--warn); border-color: color-mix(in srgb, var(--warn) 30%, transparent); }
.banner.bad { background: var(--bad-soft); color: var(--bad); border-color: color-mix(in srgb, var(--bad) 30%, transparent); }
.cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 14px; margin-bottom: 18px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; min-width: 0; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.card .value { font-size: 24px; font-weight: 600; margin-top: 4px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12.5px; margin-top: 2px; min-height: 18px; }
.card.leader { border-left: 4px solid var(--accent); }
.card.leader .value { color: var(--accent); }
.card.leader.none { border-left-color: var(--warn); background: var(--warn-soft); }
.card.leader.none .value { color: var(--warn); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 6px 0 4px; margin-bottom: 18px; min-width: 0; }
.panel h2 { font-size: 13px; font-weight: 600; margin: 8px 18px 8px; display: flex; justify-content: space-between; gap: 12px; }
.panel h2 .hint { color: var(--muted); font-weight: 400; }
.panel h3 { font-size: 12px; font-weight: 600; margin: 14px 18px 6px; display: flex; justify-content: space-between; gap: 12px; }
.panel h3 .hint { color: var(--muted); font-weight: 400; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 9px 18px; border-top: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12px; background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; color: var(--muted); }
tr.self td:first-child { font-weight: 600; }
.you { color: var(--muted); font-weight: 400; font-size: 12px; margin-left: 6px; }
[hidden] { display: none !important; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 500; background: var(--soft); color: var(--muted); }
.pill::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
.pill.ok { background: var(--accent-soft); color: var(--accent); }
.pill.warn { background: var(--warn-soft); color: var(--warn); }
.pill.bad { background: var(--bad-soft); color: var(--bad); }
.pill.info { background: var(--info-soft); color: var(--info); }
.role-leader { color: var(--accent); font-weight: 600; }
.lag { display: flex; align-items: center; gap: 10px; min-width: 130px; }
.lag .bar { flex: 1; height: 6px; border-radius: 3px; background: var(--soft); overflow: hidden; }
.lag .bar span { display: block; height: 100%; background: var(--accent); width: 0; }
.lag.behind .bar span { background: var(--warn); }
.lag .n { min-width: 44px; text-align: right; font-variant-numeric: tabular-nums; }
.split { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); gap: 18px; }
ol.timeline { list-style: none; margin: 0; padding: 0; }
ol.timeline li { display: flex; align-items: center; gap: 12px; padding: 9px 18px; border-top: 1px solid var(--line); }
ol.timeline .term { color: var(--muted); font-variant-numeric: tabular-nums; min-width: 58px; }
ol.timeline .what { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
ol.timeline .when { color: var(--muted); font-size: 12.5px; }
.empty { color: var(--muted); padding: 10px 18px 12px; margin: 0; border-top: 1px solid var(--line); }
.charts { padding: 2px 18px 12px; border-top: 1px solid var(--line); }
.chart h3 { display: flex; justify-content: space-between; gap: 12px; margin: 10px 0 4px; font-size: 12px; font-weight: 500; color: var(--muted); }
.chart h3 b { color: var(--ink); font-weight: 600; font-variant-numeric: tabular-nums; }
.chart svg { display: block; width: 100%; height: 110px; overflow: visible; }
.chart svg.band { height: 26px; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 10px; font-variant-numeric: tabular-nums; }
.chart .line { fill: none; stroke-width: 1.75; stroke-linejoin: round; stroke-linecap: round; }
.chart .rate { stroke: var(--accent); }
.chart .area { fill: var(--accent-soft); stroke: none; }
.chart .mark { stroke: var(--muted); stroke-width: 1; stroke-dasharray: 3 3; }
.chart .mark.lost { stroke: var(--warn); }
.chart .seg.none { fill: var(--warn-soft); stroke: var(--warn); stroke-width: 1; stroke-dasharray: 2 2; }
.chart .seg-label { fill: var(--panel); font-size: 11px; font-weight: 600; }
.chart .seg-label.none { fill: var(--warn); }
.chart .note { fill: var(--muted); font-size: 12px; }
.c0 { stroke: var(--s0); } .c1 { stroke: var(--s1); } .c2 { stroke: var(--s2); } .c3 { stroke: var(--s3); } .c4 { stroke: var(--s4); } .c5 { stroke: var(--s5); }
.f0 { fill: var(--s0); } .f1 { fill: var(--s1); } .f2 { fill: var(--s2); } .f3 { fill: var(--s3); } .f4 { fill: var(--s4); } .f5 { fill: var(--s5); }
.k0 { color: var(--s0); } .k1 { color: var(--s1); } .k2 { color: var(--s2); } .k3 { color: var(--s3); } .k4 { color: var(--s4); } .k5 { color: var(--s5); }
.legend { display: flex; flex-wrap: wrap; gap: 2px 14px; margin-top: 4px; font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend span::before { content: ""; width: 12px; height: 3px; border-radius: 2px; background: currentColor; }
.legend b { color: var(--ink); font-weight: 500; font-variant-numeric: tabular-nums; }
footer { max-width: 1180px; margin: 0 auto; padding: 4px 28px 28px; color: var(--muted); font-size: 12.5px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
body.stale main { opacity: .55; }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } .split { grid-template-columns: 1fr; } .panel { overflow-x: auto; } }
@media (max-width: 600px) { header { padding: 12px 16px; } main { padding: 16px 16px 4px; } footer { padding: 4px 16px 20px; } .card .value { font-size: 20px; } }
`;

const SCRIPT = `
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const pill = (cls, text) => el('span', 'pill ' + cls, text);
  const dir = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const url = new URL(document.body.dataset.status, location.origin + dir);
  $('source').textContent = url.pathname;

  const dur = (ms) => {
    if (ms === null || ms === undefined) return 'never';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + ' s';
    if (ms < 3600000) return Math.round(ms / 60000) + ' min';
    return (ms / 3600000).toFixed(1) + ' h';
  };
  const ago = (report, at) => dur(Math.max(0, report.time - at)) + ' ago';
  const fill = (tbody, rows) => tbody.replaceChildren(...rows);

  let lastOk = 0;

  function banner(kind, text) {
    const b = $('banner');
    b.hidden = !text;
    b.className = 'banner ' + (kind || '');
    b.textContent = text || '';
  }

  function memberState(m) {
    if (m.isSelf) return pill('info', 'this node');
    if (m.reachable === false) return pill('bad', 'unreachable');
    if (m.reachable === true) return pill('ok', 'reachable');
    return pill('', m.connected ? 'connected' : 'unknown');
  }

  function lagCell(m, maxLag) {
    const td = el('td');
    if (m.lag === null) { td.textContent = '—'; return td; }
    const wrap = el('div', 'lag' + (m.lag > 0 ? ' behind' : ''));
    const bar = el('div', 'bar');
    const fillBar = el('span');
    fillBar.style.width = (m.lag > 0 ? Math.max(4, (m.lag / maxLag) * 100) : 0) + '%';
    bar.append(fillBar);
    wrap.append(el('span', 'n', m.lag.toLocaleString()), bar);
    td.append(wrap);
    return td;
  }

  function renderMembers(r) {
    const maxLag = Math.max(0, ...r.members.map((m) => m.lag || 0));
    fill($('members').tBodies[0], r.members.map((m) => {
      const tr = el('tr', m.isSelf ? 'self' : '');
      tr.dataset.member = m.id;
      tr.dataset.role = m.role;
      tr.dataset.reachable = String(m.reachable);
      tr.dataset.membership = m.membership;
      const name = el('td');
      name.append(el('span', '', m.id));
      if (m.isSelf) name.append(el('span', 'you', '(this page)'));
      const state = el('td');
      state.append(memberState(m));
      tr.append(
        name,
        el('td', 'mono', m.address),
        el('td', m.role === 'leader' ? 'role-leader' : '', m.role === 'unknown' ? '—' : m.role),
        el('td', '', m.membership),
        state,
        el('td', 'num', m.matchIndex === null ? '—' : m.matchIndex.toLocaleString()),
        lagCell(m, maxLag),
        el('td', 'num', (m.isSelf && r.viewFrom === r.nodeId) || !r.replicatedLog ? '—' : dur(m.lastContactMs)),
      );
      return tr;
    }));
    $('view').textContent = !r.replicatedLog
      ? 'nodes present now; the backend replicates the data, so there is no lag between them'
      : r.viewFrom === r.nodeId && !r.isLeader
      ? 'no leader answered: last contact as this node saw it'
      : 'match index, lag and last contact as leader ' + r.viewFrom + ' sees them';
  }

  function renderChanges(r) {
    const list = $('changes');
    list.replaceChildren(...r.leadershipChanges.map((c) => {
      const li = el('li');
      const what = el('span', 'what');
      if (c.leaderId === null) what.append(pill('warn', 'leader lost'));
      else what.append(el('span', 'role-leader', c.leaderId), document.createTextNode(' leads'));
      li.append(el('span', 'term', 'term ' + c.term), what, el('span', 'when', ago(r, c.at)));
      return li;
    }));
    $('changes-empty').hidden = r.leadershipChanges.length > 0;
  }

  function renderMembership(r) {
    const list = $('membership');
    list.replaceChildren(...r.membershipChanges.map((c) => {
      const li = el('li');
      li.append(el('span', 'term', 'index ' + c.index.toLocaleString()), el('span', 'what', c.change), el('span', 'when', ago(r, c.at)));
      return li;
    }));
    $('membership-empty').hidden = r.membershipChanges.length > 0;
    const pending = $('membership-pending');
    pending.hidden = !r.membershipChange;
    pending.textContent = r.membershipChange ? 'change in progress (log index ' + r.membershipChange.index.toLocaleString() + ')' : '';
  }

  const OUTCOME = { ok: 'ok', error: 'bad', running: 'info', skipped: '', abandoned: 'warn' };
  function renderTasks(r) {
    fill($('tasks').tBodies[0], r.tasks.map((t) => {
      const tr = el('tr');
      tr.dataset.task = t.task;
      tr.dataset.node = t.node;
      tr.dataset.outcome = t.outcome;
      const outcome = el('td');
      outcome.append(pill(OUTCOME[t.outcome] ?? '', t.outcome));
      if (t.error) outcome.title = t.error;
      // The ledger closes a run its leader left running when the next term begins.
      else if (t.outcome === 'abandoned') outcome.title = t.node + ' crashed or stopped leading (term ' + t.term + ') before it recorded an end';
      tr.append(
        el('td', '', t.task),
        el('td', '', t.node),
        el('td', 'num', t.term),
        el('td', '', ago(r, t.start)),
        el('td', 'num', t.end === undefined ? '—' : dur(t.end - t.start)),
        outcome,
      );
      return tr;
    }));
    $('tasks-empty').hidden = r.tasks.length > 0;
  }

  function renderEtcd(r) {
    const panel = $('etcd');
    panel.hidden = !r.etcd;
    if (panel.hidden) return;
    const e = r.etcd;
    $('etcd-prefix').textContent = 'keys under ' + e.prefix + (e.leaderEndpoint ? ' · etcd leader ' + e.leaderEndpoint : ' · no etcd leader answered');
    fill($('etcd-endpoints').tBodies[0], e.endpoints.map((x) => {
      const tr = el('tr');
      tr.dataset.endpoint = x.url;
      tr.append(
        el('td', 'mono', x.url),
        el('td', '', x.name || '—'),
        el('td', x.isLeader ? 'role-leader' : '', x.reachable ? (x.isLeader ? 'leader' : 'member') : 'unreachable'),
        el('td', 'num', x.raftTerm === null ? '—' : String(x.raftTerm)),
        el('td', 'num', x.revision === null ? '—' : x.revision.toLocaleString()),
        el('td', '', x.version || (x.error || '—')),
      );
      return tr;
    }));
    fill($('etcd-nodes').tBodies[0], e.nodes.map((n) => {
      const tr = el('tr');
      tr.dataset.node = n.id;
      tr.append(el('td', '', n.id), el('td', 'mono', n.address), el('td', 'mono', n.leaseId), el('td', 'num', n.ttlLeftS === null ? '—' : n.ttlLeftS + ' s'));
      return tr;
    }));
  }

  function render(r) {
    document.title = (r.leaderId ? r.leaderId + ' leads' : 'no leader') + ' · catga cluster';
    $('node').textContent = r.nodeId;
    const card = $('leader-card');
    card.classList.toggle('none', !r.leaderId);
    $('leader').textContent = r.leaderId || 'No leader';
    $('leader-sub').textContent = r.leaderId
      ? (r.isLeader ? 'this node' : (r.members.find((m) => m.id === r.leaderId) || {}).address || '')
      : 'election in progress or no quorum';
    $('term').textContent = r.term.toLocaleString();
    const began = r.leadershipChanges.filter((c) => c.term === r.term).pop();
    $('term-sub').textContent = began ? 'since ' + ago(r, began.at) : '';
    $('commit').textContent = r.commitIndex.toLocaleString();
    $('applied').textContent = 'applied ' + r.appliedIndex.toLocaleString() + ' · snapshot ' + r.snapshotIndex.toLocaleString();
    $('self-role').textContent = r.role;
    $('self-sub').textContent = r.isLeader ? (r.leaseValid ? 'lease valid' : 'lease not confirmed') : 'last index ' + r.lastIndex.toLocaleString();
    $('backend').textContent = r.backend + ' backend';
    renderMembers(r);
    renderEtcd(r);
    renderChanges(r);
    renderMembership(r);
    renderTasks(r);
    renderCharts(r);
    if (!r.leaderId) banner('warn', 'No leader. An election is running, or a quorum of members cannot be reached; writes wait until a leader is elected.');
    else banner(null, null);
  }

  // The last minutes, drawn as inline SVG. Commit rate and lag come from this page's own polls (a ring buffer of
  // WINDOW_MS; it starts empty when the page opens), leadership changes from the node (it keeps the last 20). The
  // time axis spans what there is to show, from MIN_SPAN_MS up to WINDOW_MS.
  const WINDOW_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const GAP_MS = 5000; // polls further apart (a hidden tab, a node not answering) are not joined by a line
  const MAX_SAMPLES = 600;
  const PAD = { l: 40, r: 10, t: 8, b: 18 };
  const NS = 'http://www.w3.org/2000/svg';
  const history = [];
  const colors = new Map();
  const colorOf = (id) => {
    if (!colors.has(id)) colors.set(id, colors.size % 6);
    return colors.get(id);
  };
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  };
  const niceMax = (v) => {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
  };
  const num = (v) => (v >= 100 ? Math.round(v).toLocaleString() : String(Math.round(v * 10) / 10));

  function record(r) {
    const last = history[history.length - 1];
    if (last && r.time <= last.t) {
      if (r.time === last.t) return;
      history.length = 0; // the node's clock went back: start over rather than draw backwards
    }
    const prev = history[history.length - 1];
    const dt = prev ? r.time - prev.t : 0;
    const rate = prev && dt > 0 && dt <= GAP_MS ? (Math.max(0, r.commitIndex - prev.commit) * 1000) / dt : null;
    history.push({ t: r.time, commit: r.commitIndex, rate, lags: new Map(r.members.map((m) => [m.id, m.lag])) });
    while (history.length > MAX_SAMPLES || history[0].t < r.time - WINDOW_MS) history.shift();
  }

  /** How far back the charts go: to the oldest sample or leadership change kept, within [MIN_SPAN_MS, WINDOW_MS]. */
  function spanOf(r, changes) {
    const oldest = Math.min(history[0].t, ...changes.map((c) => c.at));
    return Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, r.time - oldest));
  }

  /** The time axis every chart shares: the last span ms of the node clock. */
  function axisOf(chart, r, span) {
    const box = chart.getBoundingClientRect();
    const w = Math.max(160, Math.round(box.width));
    const h = Math.max(20, Math.round(box.height));
    chart.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    const start = r.time - span;
    return { w, h, span, start, end: r.time, x: (t) => PAD.l + ((t - start) / span) * (w - PAD.l - PAD.r) };
  }
  const tickLabel = (ms) => '−' + (ms < 60000 ? ms / 1000 + ' s' : ms / 60000 + ' min');

  /** Runs of consecutive points (broken at nulls and gaps) in chart coordinates. */
  function runsOf(points, x, y) {
    const runs = [];
    let run = null;
    let prevT = null;
    for (const p of points) {
      if (p.v === null || p.v === undefined) { run = null; continue; }
      if (!run || p.t - prevT > GAP_MS) runs.push((run = []));
      run.push([x(p.t), y(p.v)]);
      prevT = p.t;
    }
    return runs;
  }
  // A lone point is a zero-length segment, which the round line cap draws as a dot.
  const pathOf = (runs) => runs.map((run) => (run.length === 1 ? [run[0], run[0]] : run).map(([px, py], i) => (i ? 'L' : 'M') + px.toFixed(1) + ' ' + py.toFixed(1)).join(' ')).join(' ');

  /** Grid, value labels, minute ticks and leadership-change markers of a value chart; returns its y scale. */
  function frame(a, max, changes) {
    const top = niceMax(max);
    const y = (v) => PAD.t + (1 - v / top) * (a.h - PAD.t - PAD.b);
    const nodes = [];
    for (const f of [0, 0.5, 1]) {
      nodes.push(svg('line', { class: 'grid', x1: PAD.l, x2: a.w - PAD.r, y1: y(top * f), y2: y(top * f) }));
      if (f !== 0.5) nodes.push(svg('text', { class: 'axis', x: PAD.l - 6, y: y(top * f) + 3, 'text-anchor': 'end' }, num(top * f)));
    }
    const step = a.span <= 60000 ? 10000 : a.span <= 180000 ? 30000 : 60000;
    for (let k = 0; k * step <= a.span; k++) {
      const label = k === 0 ? 'now' : tickLabel(k * step);
      nodes.push(svg('text', { class: 'axis', x: a.x(a.end - k * step), y: a.h - 4, 'text-anchor': k === 0 ? 'end' : 'middle' }, label));
    }
    for (const c of changes) {
      const mark = svg('line', { class: 'mark' + (c.leaderId ? '' : ' lost'), x1: a.x(c.at), x2: a.x(c.at), y1: PAD.t, y2: a.h - PAD.b });
      mark.append(svg('title', {}, 'term ' + c.term + ': ' + (c.leaderId ? c.leaderId + ' leads' : 'leader lost')));
      nodes.push(mark);
    }
    return { y, nodes };
  }

  function renderRate(r, span, changes) {
    const chart = $('chart-commits');
    const a = axisOf(chart, r, span);
    const points = history.map((s) => ({ t: s.t, v: s.rate }));
    const known = points.filter((p) => p.v !== null);
    const max = Math.max(0, ...known.map((p) => p.v));
    const { y, nodes } = frame(a, max, changes);
    const runs = runsOf(points, a.x, y);
    const base = y(0).toFixed(1);
    const area = runs.filter((run) => run.length > 1)
      .map((run) => 'M' + run[0][0].toFixed(1) + ' ' + base + ' ' + run.map(([px, py]) => 'L' + px.toFixed(1) + ' ' + py.toFixed(1)).join(' ') + ' L' + run[run.length - 1][0].toFixed(1) + ' ' + base + ' Z')
      .join(' ');
    nodes.push(svg('path', { class: 'area', d: area }), svg('path', { class: 'line rate', d: pathOf(runs) }));
    if (known.length === 0) nodes.push(svg('text', { class: 'note', x: a.w / 2, y: a.h / 2, 'text-anchor': 'middle' }, 'collecting…'));
    chart.replaceChildren(...nodes);
    const latest = known.length ? known[known.length - 1].v : null;
    chart.setAttribute('data-points', known.length);
    chart.setAttribute('data-latest', latest === null ? '' : latest.toFixed(1));
    chart.setAttribute('data-max', max.toFixed(1));
    $('rate-now').textContent = latest === null ? '…' : num(latest) + '/s';
  }

  function renderLag(r, span, changes) {
    const chart = $('chart-lag');
    const a = axisOf(chart, r, span);
    const ids = [...new Set([...r.members.map((m) => m.id), ...history.flatMap((s) => [...s.lags.keys()])])];
    const series = ids.map((id) => ({ id, points: history.map((s) => ({ t: s.t, v: s.lags.has(id) ? s.lags.get(id) : null })) }))
      .map((s) => ({ ...s, known: s.points.filter((p) => p.v !== null) }))
      .filter((s) => s.known.length > 0);
    const max = Math.max(0, ...series.flatMap((s) => s.known.map((p) => p.v)));
    const { y, nodes } = frame(a, max, changes);
    for (const s of series) {
      const path = svg('path', { class: 'line c' + colorOf(s.id), d: pathOf(runsOf(s.points, a.x, y)), 'data-member': s.id });
      path.append(svg('title', {}, s.id));
      nodes.push(path);
    }
    if (series.length === 0) nodes.push(svg('text', { class: 'note', x: a.w / 2, y: a.h / 2, 'text-anchor': 'middle' }, 'no leader view yet'));
    chart.replaceChildren(...nodes);
    chart.setAttribute('data-series', series.length);
    chart.setAttribute('data-points', series.reduce((n, s) => n + s.known.length, 0));
    chart.setAttribute('data-max', max);
    $('lag-legend').replaceChildren(...series.map((s) => {
      const item = el('span', 'k' + colorOf(s.id), s.id + ' ');
      const now = s.points[s.points.length - 1].v;
      item.append(el('b', '', now === null ? '—' : now.toLocaleString()));
      return item;
    }));
    const worst = Math.max(0, ...r.members.map((m) => m.lag || 0));
    $('lag-now').textContent = r.members.some((m) => m.lag !== null) ? 'max ' + worst.toLocaleString() + ' now' : '—';
  }

  function renderLeaders(r, span, changes) {
    const chart = $('chart-leaders');
    const a = axisOf(chart, r, span);
    const all = r.leadershipChanges.slice().sort((p, q) => p.at - q.at);
    const nodes = [];
    let segments = 0;
    for (const [i, c] of all.entries()) {
      const to = i + 1 < all.length ? all[i + 1].at : a.end;
      if (to <= a.start) continue;
      const x1 = a.x(Math.max(c.at, a.start));
      const width = Math.max(1, a.x(to) - x1);
      const seg = svg('rect', { class: c.leaderId ? 'seg f' + colorOf(c.leaderId) : 'seg none', x: x1, y: 1, width, height: a.h - 2, rx: 3 });
      seg.append(svg('title', {}, 'term ' + c.term + ': ' + (c.leaderId ? c.leaderId + ' leads' : 'no leader')));
      nodes.push(seg);
      if (width > 48) nodes.push(svg('text', { class: 'seg-label' + (c.leaderId ? '' : ' none'), x: x1 + 6, y: a.h / 2 + 4 }, c.leaderId || 'no leader'));
      segments++;
    }
    if (segments === 0) nodes.push(svg('text', { class: 'note', x: PAD.l, y: a.h / 2 + 4 }, 'no leadership change known'));
    chart.replaceChildren(...nodes);
    chart.setAttribute('data-changes', changes.length);
    chart.setAttribute('data-segments', segments);
    $('leaders-now').textContent = changes.length + (changes.length === 1 ? ' change' : ' changes') + ' in ' + dur(span);
  }

  function renderCharts(r) {
    record(r);
    const changes = r.leadershipChanges.filter((c) => c.at >= r.time - WINDOW_MS && c.at <= r.time);
    const span = spanOf(r, changes);
    renderLeaders(r, span, changes);
    renderRate(r, span, changes);
    renderLag(r, span, changes);
  }

  function tickAge() {
    $('updated').textContent = lastOk ? 'updated ' + dur(Date.now() - lastOk) + ' ago' : 'connecting…';
  }

  async function poll() {
    if (!document.hidden) {
      try {
        const res = await fetch(url, { cache: 'no-store', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(3000) });
        if (!res.ok) throw new Error('HTTP ' + res.status);
        render(await res.json());
        lastOk = Date.now();
        document.body.classList.remove('stale');
      } catch (e) {
        document.body.classList.add('stale');
        banner('bad', 'This node is not answering (' + (e && e.message ? e.message : e) + '). Showing the last status it sent.');
      }
      tickAge();
    }
    setTimeout(poll, 1000);
  }

  setInterval(tickAge, 500);
  poll();
})();
`;

const BODY = `
<header>
  <div class="brand"><span class="logo"></span>catga cluster</div>
  <div class="meta"><span id="backend" data-testid="backend"></span> · viewed from <b id="node">…</b> · <span id="updated">connecting…</span></div>
</header>
<main>
  <div id="banner" class="banner" hidden></div>
  <section class="cards">
    <div class="card leader" id="leader-card"><div class="label">Leader</div><div class="value" id="leader" data-testid="leader">…</div><div class="sub" id="leader-sub"></div></div>
    <div class="card"><div class="label">Term</div><div class="value" id="term">…</div><div class="sub" id="term-sub"></div></div>
    <div class="card"><div class="label">Commit index</div><div class="value" id="commit">…</div><div class="sub" id="applied"></div></div>
    <div class="card"><div class="label">This node</div><div class="value" id="self-role">…</div><div class="sub" id="self-sub"></div></div>
  </section>
  <section class="panel" id="history">
    <h2>Last minutes <span class="hint">up to 5: rate and lag from this page's polls since it opened, leaders as this node saw them</span></h2>
    <div class="charts">
      <div class="chart"><h3>Leader <b id="leaders-now"></b></h3><svg id="chart-leaders" class="band" role="img" aria-label="leader over time"></svg></div>
      <div class="chart"><h3>Commits per second <b id="rate-now">…</b></h3><svg id="chart-commits" role="img" aria-label="commits per second over time"></svg></div>
      <div class="chart"><h3>Lag per member (entries) <b id="lag-now"></b></h3><svg id="chart-lag" role="img" aria-label="each member's lag over time"></svg><div class="legend" id="lag-legend"></div></div>
    </div>
  </section>
  <section class="panel">
    <h2>Members <span class="hint" id="view"></span></h2>
    <table id="members">
      <thead><tr><th>Node</th><th>Cluster address</th><th>Role</th><th>Membership</th><th>State</th><th class="num">Match index</th><th>Lag (entries)</th><th class="num">Last contact</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="panel" id="etcd" hidden>
    <h2>etcd <span class="hint" id="etcd-prefix"></span></h2>
    <table id="etcd-endpoints">
      <thead><tr><th>Endpoint</th><th>Name</th><th>Role</th><th class="num">Raft term</th><th class="num">Revision</th><th>Version</th></tr></thead>
      <tbody></tbody>
    </table>
    <h3>App nodes present <span class="hint">each holds a session lease</span></h3>
    <table id="etcd-nodes">
      <thead><tr><th>Node</th><th>Forward address</th><th>Lease</th><th class="num">Lease left</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div class="split">
    <section class="panel">
      <h2>Leadership changes <span class="hint">as this node saw them</span></h2>
      <ol class="timeline" id="changes"></ol>
      <p class="empty" id="changes-empty">None seen yet.</p>
    </section>
    <section class="panel">
      <h2>Singleton task runs <span class="hint">replicated ledger</span></h2>
      <table id="tasks">
        <thead><tr><th>Task</th><th>Node</th><th class="num">Term</th><th>Started</th><th class="num">Took</th><th>Outcome</th></tr></thead>
        <tbody></tbody>
      </table>
      <p class="empty" id="tasks-empty">No runs recorded.</p>
    </section>
  </div>
  <section class="panel">
    <h2>Membership changes <span class="hint">joins, promotions, removals, as this node saw them</span> <span class="pill info" id="membership-pending" hidden></span></h2>
    <ol class="timeline" id="membership"></ol>
    <p class="empty" id="membership-empty">None since this node started.</p>
  </section>
</main>
<footer>Refreshes every second from <code id="source"></code></footer>
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Admits the page's own inline style and script and same-origin requests; nothing else loads or runs. */
export const CLUSTER_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${hash(STYLE)}`,
  `script-src ${hash(SCRIPT)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The page; `statusUrl` is the status endpoint relative to the page's own path (so it works behind a prefix). */
export function renderClusterPage(statusUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>catga cluster</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-status="${escapeAttribute(statusUrl)}">${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;
}

function escapeAttribute(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
