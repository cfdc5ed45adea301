/**
 * An independent check of a Chrome trace-event file (the JSON object form Perfetto and
 * chrome://tracing open), written from the format's description rather than from fencelab's
 * exporter: required fields per phase, spans that close (B/E pairs, X with a duration) and nest on
 * each track, flows with both ends each bound to a slice on its track, named tracks.
 */

const PHASES = new Set(['B', 'E', 'X', 'i', 'I', 's', 't', 'f', 'M', 'C', 'b', 'e', 'n']);

interface Ev {
  name?: unknown;
  ph?: unknown;
  pid?: unknown;
  tid?: unknown;
  ts?: unknown;
  dur?: unknown;
  id?: unknown;
  cat?: unknown;
  bp?: unknown;
  s?: unknown;
  args?: unknown;
}

const isInt = (x: unknown) => typeof x === 'number' && Number.isInteger(x);
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
/** Timestamps are µs with ns precision: compare them as whole ns, as the viewers do. */
const ns = (us: number) => Math.round(us * 1000);

/** Everything wrong with `trace` as a Chrome trace (empty when it is valid). */
export function chromeTraceProblems(trace: unknown): string[] {
  const p: string[] = [];
  if (trace === null || typeof trace !== 'object' || !Array.isArray((trace as { traceEvents?: unknown }).traceEvents))
    return ['not an object with a traceEvents array'];
  if (JSON.stringify(JSON.parse(JSON.stringify(trace))) !== JSON.stringify(trace)) p.push('does not survive a JSON round trip');
  const events = (trace as { traceEvents: Ev[] }).traceEvents;
  const slices = new Map<string, { ts: number; end: number; name: string }[]>();
  const open = new Map<string, Ev[]>();
  const flows = new Map<string, { s: Ev[]; f: Ev[] }>();
  const named = new Set<string>();
  const used = new Set<string>();
  events.forEach((e, i) => {
    const at = `event ${i} (${String(e.name)})`;
    if (typeof e.ph !== 'string' || !PHASES.has(e.ph)) return p.push(`${at}: unknown phase ${String(e.ph)}`);
    if (typeof e.name !== 'string') p.push(`${at}: name is not a string`);
    if (!isInt(e.pid) || !isInt(e.tid)) p.push(`${at}: pid and tid must be integers`);
    if (e.args !== undefined && (e.args === null || typeof e.args !== 'object')) p.push(`${at}: args is not an object`);
    const track = `${String(e.pid)}/${String(e.tid)}`;
    if (e.ph === 'M') {
      if ((e.name === 'thread_name' || e.name === 'process_name') && typeof (e.args as { name?: unknown })?.name !== 'string')
        p.push(`${at}: metadata without args.name`);
      if (e.name === 'thread_name') named.add(track);
      return;
    }
    if (!isNum(e.ts)) return p.push(`${at}: ts is not a finite number`);
    used.add(track);
    const list = (m: Map<string, Ev[]>, k: string) => m.get(k) ?? m.set(k, []).get(k)!;
    switch (e.ph) {
      case 'X':
        if (!isNum(e.dur) || e.dur < 0) p.push(`${at}: complete event without a duration ≥ 0`);
        else (slices.get(track) ?? slices.set(track, []).get(track)!).push({ ts: ns(e.ts), end: ns(e.ts) + ns(e.dur), name: String(e.name) });
        break;
      case 'B':
        list(open, track).push(e);
        break;
      case 'E': {
        const b = open.get(track)?.pop();
        if (!b) p.push(`${at}: end without a begin on track ${track}`);
        else (slices.get(track) ?? slices.set(track, []).get(track)!).push({ ts: ns(b.ts as number), end: ns(e.ts), name: String(b.name) });
        break;
      }
      case 'i':
      case 'I':
        if (e.s !== undefined && !['g', 'p', 't'].includes(String(e.s))) p.push(`${at}: instant scope ${String(e.s)}`);
        break;
      case 's':
      case 'f': {
        if (e.id === undefined || typeof e.cat !== 'string') p.push(`${at}: flow event without id or cat`);
        const k = `${String(e.cat)}|${String(e.name)}|${String(e.id)}`;
        const fl = flows.get(k) ?? flows.set(k, { s: [], f: [] }).get(k)!;
        fl[e.ph].push(e);
        break;
      }
    }
  });
  for (const [track, stack] of open) if (stack.length) p.push(`track ${track}: ${stack.length} spans never end (${String(stack[0].name)} …)`);
  // Slices of one track nest: each one starts after the open ones ended, or ends inside the innermost.
  for (const [track, list] of slices) {
    list.sort((a, b) => a.ts - b.ts || b.end - a.end);
    const stack: { end: number; name: string }[] = [];
    for (const s of list) {
      while (stack.length && stack[stack.length - 1].end <= s.ts) stack.pop();
      const top = stack[stack.length - 1];
      if (top && s.end > top.end) p.push(`track ${track}: "${s.name}" overlaps "${top.name}" without nesting`);
      stack.push(s);
    }
  }
  // Flows: exactly one start and one end, each inside a slice of its own track.
  const inside = (e: Ev) => (slices.get(`${String(e.pid)}/${String(e.tid)}`) ?? []).some((s) => s.ts <= ns(e.ts as number) && ns(e.ts as number) <= s.end);
  for (const [k, fl] of flows) {
    if (fl.s.length !== 1 || fl.f.length !== 1) {
      p.push(`flow ${k}: ${fl.s.length} starts and ${fl.f.length} ends (want one of each)`);
      continue;
    }
    if (!inside(fl.s[0])) p.push(`flow ${k}: its start is not inside a slice of its track`);
    if (!inside(fl.f[0])) p.push(`flow ${k}: its end is not inside a slice of its track`);
    if (fl.f[0].bp !== undefined && fl.f[0].bp !== 'e') p.push(`flow ${k}: binding point ${String(fl.f[0].bp)}`);
  }
  for (const track of used) if (!named.has(track)) p.push(`track ${track} has events but no thread_name`);
  return p;
}

/** The trace's flows as [start event, end event] pairs. */
export function flowPairs(trace: { traceEvents: Ev[] }): [Ev, Ev][] {
  const byId = new Map<string, { s?: Ev; f?: Ev }>();
  for (const e of trace.traceEvents) {
    if (e.ph !== 's' && e.ph !== 'f') continue;
    const k = `${String(e.cat)}|${String(e.name)}|${String(e.id)}`;
    const fl = byId.get(k) ?? byId.set(k, {}).get(k)!;
    fl[e.ph] = e;
  }
  return [...byId.values()].filter((f) => f.s && f.f).map((f) => [f.s!, f.f!]);
}
