/**
 * A small timeline view of a Chrome trace for people without Perfetto at hand: one self-contained
 * HTML page (or a section to put in another page, the bench report's) that draws every track —
 * thread tracks and fence-context tracks — with their slices, instants and flow arrows on a canvas,
 * zooms with the wheel, pans by dragging, and shows an event's details on hover. No network, no
 * dependency: the trace sits in the page as JSON.
 */
import { Errors, optionsArg } from '../errors.js';
import { CHROME_TRACE_SHAPE, type ChromeTrace } from './chrome.js';
import { checkShape } from './shape.js';

/** Options of {@link renderTimelinePage} and {@link renderTimelineSection}. */
export interface TimelineOptions {
  /** Heading of the view. */
  title?: string;
  /** The trace file the view was made from: the page says how to open it in Perfetto. */
  traceFile?: string;
  /** DOM id of the section (several views in one page need distinct ids). */
  id?: string;
  /** A paragraph under the heading saying what was traced (HTML, inserted as given). */
  descriptionHtml?: string;
}

/** Escapes text for HTML content and attribute values. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JSON for a `<script>` element: every `<` escaped, so no string in it can close the element. */
function scriptJson(value: unknown): string {
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw Errors.invalid(`trace cannot be written as JSON (${e instanceof Error ? e.message : 'it threw'})`);
  }
  return json.replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Counts shown above the timeline. */
function summary(trace: ChromeTrace): string {
  const ev = trace.traceEvents;
  const count = (f: (e: ChromeTrace['traceEvents'][number]) => boolean) => ev.reduce((n, e) => n + (f(e) ? 1 : 0), 0);
  const uaf = count((e) => e.name === 'use_after_free');
  const flows = count((e) => e.ph === 's');
  const fences = count((e) => e.ph === 'X' && e.cat === 'fence' && e.args?.createdBy !== undefined);
  const open = count((e) => e.ph === 'X' && e.args?.open === true);
  const lost = Number(trace.otherData.eventsLost ?? 0);
  const parts = [
    `${count((e) => e.ph === 'M' && e.name === 'thread_name')} tracks`,
    `${fences} fence lifetimes`,
    `${flows} signal→wake/callback arrows`,
    `${uaf} use-after-free${uaf === 1 ? '' : 's'}`,
    `${open} spans still open at the end`,
    ...(lost > 0 ? [`${lost} events lost (rings full)`] : []),
  ];
  return parts.join(' · ');
}

/**
 * A `<section>` that draws `trace` (its data, canvas and script included). Put it in any page;
 * several sections need distinct `options.id`s. Any thread. Throws EINVAL naming the field when
 * `trace` is not a Chrome trace or `options` has the wrong shape (an id that is no plain identifier).
 */
export function renderTimelineSection(trace: ChromeTrace, options: TimelineOptions = {}): string {
  options = timelineArgs(trace, options, 'renderTimelineSection');
  const id = options.id ?? 'fencelab-timeline';
  if (!/^[A-Za-z][\w-]*$/.test(id)) throw Errors.invalid(`renderTimelineSection: id must be a plain identifier, got ${JSON.stringify(id)}`);
  const howto = options.traceFile
    ? `<p class="fl-howto">The full trace is <code>${esc(options.traceFile)}</code>: open it in <a href="https://ui.perfetto.dev">ui.perfetto.dev</a> (“Open trace file”) or in chrome://tracing (“Load”) for search, SQL and flow following.</p>`
    : `<p class="fl-howto">This view draws a Chrome trace-event file; Perfetto (ui.perfetto.dev) and chrome://tracing open the same file.</p>`;
  return `<section class="fl-timeline" id="${id}">
<h2>${esc(options.title ?? 'fencelab trace')}</h2>
${options.descriptionHtml ? `<p>${options.descriptionHtml}</p>\n` : ''}<p class="fl-summary">${esc(summary(trace))}</p>
${howto}
<p class="fl-legend"><span style="background:#1e88e5"></span>fence (signal; lifetime on a context track) <span style="background:#fb8c00"></span>wait <span style="background:#8e24aa"></span>lock wait / contended hold <span style="background:#43a047"></span>callback <span style="background:#00838f"></span>driver <span style="background:#e53935"></span>use-after-free <span style="background:#424242"></span>flow: signal → woken waiter / queued callback · wheel: zoom · drag: pan · click a process: fit it · double-click: fit all</p>
<div class="fl-wrap"><canvas></canvas><div class="fl-tip" hidden></div></div>
<script type="application/json">${scriptJson(trace)}</script>
<script>${VIEWER_SCRIPT.replace('__ID__', id)}</script>
</section>`;
}

/**
 * `trace` and `options` of a timeline view checked: a Chrome trace, options of known keys with
 * string values. Returns the options (`{}` for undefined). Throws EINVAL naming `where`.
 */
function timelineArgs(trace: ChromeTrace, options: TimelineOptions | undefined, where: string): TimelineOptions {
  checkShape(trace, CHROME_TRACE_SHAPE, 'trace');
  const o = optionsArg(options, where, ['title', 'traceFile', 'id', 'descriptionHtml']);
  checkShape(o, { 'title?': 'string', 'traceFile?': 'string', 'id?': 'string', 'descriptionHtml?': 'string' }, `${where}: options`);
  return o;
}

/** What marks a page fencelab wrote (its `<head>` carries it): the CLI overwrites only its own files. @internal */
export const GENERATOR_META = '<meta name="generator" content="fencelab">';

/** A whole page with the timeline of `trace`. Any thread. Throws EINVAL like {@link renderTimelineSection}. */
export function renderTimelinePage(trace: ChromeTrace, options: TimelineOptions = {}): string {
  options = timelineArgs(trace, options, 'renderTimelinePage');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${GENERATOR_META}
<title>${esc(options.title ?? 'fencelab trace')}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #212121; }
${TIMELINE_STYLE}
</style>
</head>
<body>
${renderTimelineSection(trace, options)}
</body>
</html>
`;
}

/** The section's CSS (a page that embeds the section includes it once). */
export const TIMELINE_STYLE = `
.fl-timeline h2 { margin: 0 0 0.3em; }
.fl-summary { font-weight: 600; margin: 0.2em 0; }
.fl-howto, .fl-legend { color: #555; margin: 0.2em 0 0.6em; font-size: 13px; }
.fl-legend span { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; vertical-align: -1px; }
.fl-wrap { position: relative; border: 1px solid #ccc; overflow-x: hidden; }
.fl-wrap canvas { display: block; cursor: grab; }
.fl-tip { position: absolute; pointer-events: none; background: #fffde7; border: 1px solid #999; padding: 4px 6px; font: 12px/1.3 ui-monospace, monospace; white-space: pre; max-width: 520px; overflow: hidden; z-index: 2; }
`;

/** The drawing code (runs in the browser; plain JS). `__ID__` is the section's id. */
const VIEWER_SCRIPT = String.raw`(() => {
const root = document.getElementById('__ID__');
const trace = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
const canvas = root.querySelector('canvas');
const tip = root.querySelector('.fl-tip');
const ctx = canvas.getContext('2d');
const ROW = 18, HEAD = 22, LABEL = 210, GROUP = 20;
const COLORS = { fence: '#1e88e5', wait: '#fb8c00', lock: '#8e24aa', callback: '#43a047', driver: '#00838f', sanitizer: '#e53935', thread: '#546e7a', other: '#9e9e9e' };
const procs = new Map(), tracks = new Map();
const track = (pid, tid) => {
  const k = pid + '/' + tid;
  let t = tracks.get(k);
  if (!t) tracks.set(k, (t = { pid, tid, name: 'track ' + tid, sort: tid, slices: [], instants: [] }));
  return t;
};
const flowsById = new Map();
let t0 = Infinity, t1 = -Infinity;
for (const e of trace.traceEvents) {
  if (e.ph === 'M') {
    if (e.name === 'process_name') procs.set(e.pid, Object.assign(procs.get(e.pid) || { sort: e.pid }, { name: e.args.name }));
    else if (e.name === 'process_sort_index') procs.set(e.pid, Object.assign(procs.get(e.pid) || {}, { sort: e.args.sort_index }));
    else if (e.name === 'thread_name') track(e.pid, e.tid).name = e.args.name;
    else if (e.name === 'thread_sort_index') track(e.pid, e.tid).sort = e.args.sort_index;
    continue;
  }
  if (e.ph === 'X') { track(e.pid, e.tid).slices.push(e); t0 = Math.min(t0, e.ts); t1 = Math.max(t1, e.ts + e.dur); }
  else if (e.ph === 'i') { track(e.pid, e.tid).instants.push(e); t0 = Math.min(t0, e.ts); t1 = Math.max(t1, e.ts); }
  else if (e.ph === 's' || e.ph === 'f') { const f = flowsById.get(e.id) || {}; f[e.ph] = e; flowsById.set(e.id, f); }
}
if (!(t1 > t0)) { t0 = 0; t1 = 1; }
// Rows: a heading per process, then its tracks in sort order.
const rows = [];
const byProc = new Map();
for (const t of tracks.values()) { if (!byProc.has(t.pid)) byProc.set(t.pid, []); byProc.get(t.pid).push(t); }
const pids = [...byProc.keys()].sort((a, b) => ((procs.get(a) || {}).sort ?? a) - ((procs.get(b) || {}).sort ?? b) || a - b);
let y = HEAD;
for (const pid of pids) {
  rows.push({ heading: (procs.get(pid) || {}).name || 'process ' + pid, pid, y });
  y += GROUP;
  for (const t of byProc.get(pid).sort((a, b) => a.sort - b.sort || a.tid - b.tid)) {
    t.y = y; t.slices.sort((a, b) => a.ts - b.ts); t.instants.sort((a, b) => a.ts - b.ts);
    // Depth of each slice (slices of one track nest): drawn a little lower when nested.
    const stack = [];
    for (const s of t.slices) { while (stack.length && stack[stack.length - 1] <= s.ts) stack.pop(); s.depth = stack.length; stack.push(s.ts + s.dur); }
    rows.push({ track: t, y }); y += ROW;
  }
}
const height = y + 4;
const flows = [...flowsById.values()].filter((f) => f.s && f.f).map((f) => ({ s: f.s, f: f.f, a: tracks.get(f.s.pid + '/' + f.s.tid), b: tracks.get(f.f.pid + '/' + f.f.tid) }));
let v0 = t0 - (t1 - t0) * 0.01, v1 = t1 + (t1 - t0) * 0.01;
const fit = () => { v0 = t0 - (t1 - t0) * 0.01; v1 = t1 + (t1 - t0) * 0.01; };
// Fits the view to one process (a run of the demo): its slices' and instants' time range.
const fitProcess = (pid) => {
  let a = Infinity, b = -Infinity;
  for (const t of byProc.get(pid) || []) {
    for (const s of t.slices) { a = Math.min(a, s.ts); b = Math.max(b, s.ts + s.dur); }
    for (const e of t.instants) { a = Math.min(a, e.ts); b = Math.max(b, e.ts); }
  }
  if (b > a) { v0 = a - (b - a) * 0.01; v1 = b + (b - a) * 0.01; }
};
let W = 800;
const X = (ts) => LABEL + ((ts - v0) / (v1 - v0)) * (W - LABEL);
const num = (x) => String(Number(x.toFixed(3)));
const fmt = (us) => { const a = Math.abs(us); return a >= 1e6 ? num(us / 1e6) + ' s' : a >= 1e3 ? num(us / 1e3) + ' ms' : num(us) + ' µs'; };
function draw() {
  W = root.querySelector('.fl-wrap').clientWidth || 800;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = W * dpr; canvas.height = height * dpr; canvas.style.width = W + 'px'; canvas.style.height = height + 'px';
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, height);
  ctx.font = '11px system-ui, sans-serif'; ctx.textBaseline = 'middle';
  // time axis
  const span = v1 - v0, target = span / 8, p = Math.pow(10, Math.floor(Math.log10(target)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= target) || p * 10;
  ctx.fillStyle = '#555'; ctx.strokeStyle = '#eee';
  for (let t = Math.ceil((v0 - t0) / step) * step; t <= v1 - t0; t += step) {
    const x = X(t0 + t); if (x < LABEL) continue;
    ctx.beginPath(); ctx.moveTo(x, HEAD - 4); ctx.lineTo(x, height); ctx.stroke(); ctx.fillText(fmt(t), x + 2, 10);
  }
  for (const r of rows) {
    if (r.heading) { ctx.fillStyle = '#e3f2fd'; ctx.fillRect(0, r.y, W, GROUP); ctx.fillStyle = '#0d47a1'; ctx.font = 'bold 12px system-ui, sans-serif'; ctx.fillText(r.heading, 4, r.y + GROUP / 2); ctx.font = '11px system-ui, sans-serif'; continue; }
    const t = r.track;
    ctx.fillStyle = (rows.indexOf(r) % 2) ? '#fafafa' : '#fff'; ctx.fillRect(0, r.y, W, ROW);
    ctx.save(); ctx.beginPath(); ctx.rect(LABEL, r.y, W - LABEL, ROW); ctx.clip();
    for (const s of t.slices) {
      if (s.ts > v1 || s.ts + s.dur < v0) continue;
      const x = X(s.ts), w = Math.max(1, X(s.ts + s.dur) - x), d = Math.min(s.depth, 3) * 2;
      ctx.fillStyle = s.args && s.args.errno ? '#ef9a9a' : COLORS[s.cat] || COLORS.other;
      ctx.globalAlpha = s.args && s.args.open ? 0.45 : 0.85;
      ctx.fillRect(x, r.y + 2 + d, w, ROW - 4 - d);
      ctx.globalAlpha = 1;
      if (w > 40) { ctx.fillStyle = '#fff'; ctx.fillText(s.name, x + 3, r.y + ROW / 2 + d / 2, w - 6); }
    }
    for (const e of t.instants) {
      if (e.ts < v0 || e.ts > v1) continue;
      const x = X(e.ts), uaf = e.name === 'use_after_free';
      ctx.fillStyle = uaf ? COLORS.sanitizer : COLORS[e.cat] || COLORS.other;
      ctx.beginPath(); ctx.moveTo(x, r.y + (uaf ? 1 : 4)); ctx.lineTo(x - (uaf ? 5 : 3), r.y + ROW - 2); ctx.lineTo(x + (uaf ? 5 : 3), r.y + ROW - 2); ctx.fill();
    }
    ctx.restore();
    ctx.fillStyle = '#fff'; ctx.fillRect(0, r.y, LABEL - 2, ROW);
    ctx.fillStyle = '#212121'; ctx.fillText(t.name, 14, r.y + ROW / 2, LABEL - 18);
  }
  // flows
  ctx.save(); ctx.beginPath(); ctx.rect(LABEL, HEAD, W - LABEL, height); ctx.clip();
  ctx.strokeStyle = 'rgba(33,33,33,0.55)'; ctx.fillStyle = 'rgba(33,33,33,0.7)'; ctx.lineWidth = 1;
  for (const f of flows) {
    if (!f.a || !f.b || Math.max(f.s.ts, f.f.ts) < v0 || Math.min(f.s.ts, f.f.ts) > v1) continue;
    const xa = X(f.s.ts), ya = f.a.y + ROW / 2, xb = X(f.f.ts), yb = f.b.y + ROW / 2, mid = (ya + yb) / 2;
    ctx.beginPath(); ctx.moveTo(xa, ya); ctx.bezierCurveTo(xa, mid, xb, mid, xb, yb); ctx.stroke();
    const dir = yb >= ya ? -1 : 1;
    ctx.beginPath(); ctx.moveTo(xb, yb); ctx.lineTo(xb - 3, yb + dir * 6); ctx.lineTo(xb + 3, yb + dir * 6); ctx.fill();
  }
  ctx.restore();
}
function hit(mx, my) {
  const r = rows.find((q) => q.track && my >= q.y && my < q.y + ROW);
  if (!r || mx < LABEL) return null;
  const t = v0 + ((mx - LABEL) / (W - LABEL)) * (v1 - v0), px = (v1 - v0) / (W - LABEL);
  let best = null;
  for (const e of r.track.instants) if (Math.abs(e.ts - t) <= 5 * px && (!best || Math.abs(e.ts - t) < Math.abs(best.ts - t))) best = e;
  if (best) return best;
  for (const s of r.track.slices) if (s.ts - px <= t && t <= s.ts + s.dur + px && (!best || s.depth >= best.depth)) best = s;
  return best;
}
let drag = null;
canvas.addEventListener('mousedown', (e) => { drag = { x: e.offsetX, v0, v1 }; canvas.style.cursor = 'grabbing'; });
window.addEventListener('mouseup', () => { drag = null; canvas.style.cursor = 'grab'; });
canvas.addEventListener('mousemove', (e) => {
  if (drag) { const d = ((e.offsetX - drag.x) / (W - LABEL)) * (drag.v1 - drag.v0); v0 = drag.v0 - d; v1 = drag.v1 - d; draw(); tip.hidden = true; return; }
  const h = hit(e.offsetX, e.offsetY);
  if (!h) { tip.hidden = true; return; }
  const args = h.args ? Object.entries(h.args).map(([k, v]) => '  ' + k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v)).join('\n') : '';
  tip.textContent = h.name + '\n  at ' + fmt(h.ts - t0) + (h.dur !== undefined ? ', lasted ' + fmt(h.dur) : '') + (args ? '\n' + args : '');
  tip.hidden = false;
  tip.style.left = Math.min(e.offsetX + 12, W - 300) + 'px'; tip.style.top = (e.offsetY + 14) + 'px';
});
canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
canvas.addEventListener('wheel', (e) => {
  if (e.offsetX < LABEL) return;
  e.preventDefault();
  const t = v0 + ((e.offsetX - LABEL) / (W - LABEL)) * (v1 - v0), k = Math.exp(e.deltaY * 0.002);
  v0 = t - (t - v0) * k; v1 = t + (v1 - t) * k; draw();
}, { passive: false });
canvas.addEventListener('dblclick', () => { fit(); draw(); });
canvas.addEventListener('click', (e) => {
  const r = rows.find((q) => q.heading && e.offsetY >= q.y && e.offsetY < q.y + GROUP);
  if (r) { fitProcess(r.pid); draw(); }
});
// #fit=<words>: start fitted to the first process whose name contains them.
const want = decodeURIComponent((location.hash.match(/fit=([^&]*)/) || [])[1] || '').toLowerCase();
if (want) { const r = rows.find((q) => q.heading && q.heading.toLowerCase().includes(want)); if (r) fitProcess(r.pid); }
window.addEventListener('resize', draw);
draw();
})();`;
