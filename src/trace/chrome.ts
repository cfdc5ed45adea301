/**
 * Export of a trace session to the Chrome trace-event JSON format (the `{ traceEvents: [...] }`
 * object form), which Perfetto (ui.perfetto.dev) and chrome://tracing open:
 *
 * - process 1, "threads": one track per thread, named as the thread named itself ("main",
 *   "exporter 1", "importer 2"); its waits, lock waits and contended lock holds, signals and
 *   callback runs are slices, everything else instants. Slices that overlap without nesting
 *   (async waits of one thread) go to extra tracks of the same thread ("importer 2 · 2").
 * - process 2, "fence contexts": one track per fence context with each fence's lifetime, init →
 *   signaled, as a slice (fences of one context that overlap get lanes of their own).
 * - flows (arrows) from a signal to each waiter it woke and to each callback it queued in another
 *   thread.
 *
 * Pure: it works on a {@link TraceSnapshot} (already copied out of the arena).
 */
import { BLOCK_HEADER_WORDS, BLOCK_TYPE_NAMES } from '../arena/layout.js';
import { errnoName } from '../errors.js';
import { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT } from '../locks/futex.js';
import * as L from './layout.js';
import type { RawEvent, ThreadEvents, TraceSnapshot } from './ring.js';

/** One Chrome trace event (the fields this exporter writes). */
export interface ChromeEvent {
  /** The event's name (a tracepoint, a slice such as a wait or a lock hold, or a metadata name). */
  name: string;
  /** Phase: 'X' a complete slice, 'i' an instant, 's' / 'f' the start and end of a flow arrow, 'M' metadata (process and thread names). */
  ph: 'X' | 'i' | 's' | 'f' | 'M';
  /** Process id: the threads' process or the fence contexts' one ({@link Placement.pid}). */
  pid: number;
  /** Track (thread id) within the process. */
  tid: number;
  /** Time in µs from the trace's origin (absent on metadata). */
  ts?: number;
  /** Duration in µs ('X' slices). */
  dur?: number;
  /** Category (a trace category, or 'flow' for arrows). */
  cat?: string;
  /** Scope of an instant: 't', the thread. */
  s?: 't';
  /** Flow id, shared by an arrow's 's' and 'f' events. */
  id?: number;
  /** Binding point of a flow end: 'e', the enclosing slice. */
  bp?: 'e';
  /** The event's arguments (handles, seqnos, errors, names …). */
  args?: Record<string, unknown>;
}

/** The JSON object form of the Chrome trace-event format. */
export interface ChromeTrace {
  /** Every event, metadata first. */
  traceEvents: ChromeEvent[];
  /** How viewers should show times ('ns' for fencelab's traces). */
  displayTimeUnit: 'ns' | 'ms';
  /** About the trace: producer, session, origin (ms), threads, events recorded and lost. */
  otherData: Record<string, unknown>;
}

/** Names the exporter cannot know from the events alone (the ops registry lives in the fence layer). */
export interface ExportNames {
  /** Driver name of fence ops `id`, if this thread registered them. */
  opsName?(id: number): string | undefined;
}

/** Where a snapshot goes in a trace that may hold several (one per arena: the demo's runs). */
export interface Placement {
  /** Trace clock (ms) of time 0 (default: the session's start); snapshots sharing one line up. */
  origin?: number;
  /** Process id of the thread tracks; the fence contexts get the next one (default 1). */
  pid?: number;
  /** Prefix of the two process names ("borrowed + sanitizer: threads"). */
  label?: string;
}
/** Shortest slice drawn (ns): a signal without callbacks has a single timestamp. */
const MIN_DUR_NS = 100;
/** A flow end sits this far (ns) inside its slice, so that both viewers bind it to that slice. */
const FLOW_INSET_NS = 1;

/** The kernel's tracepoint names where there is one, fencelab's own otherwise. */
export const EVENT_NAMES: Readonly<Record<number, string>> = {
  [L.EV_FENCE_INIT]: 'dma_fence_init',
  [L.EV_FENCE_EMIT]: 'dma_fence_emit',
  [L.EV_FENCE_ENABLE_SIGNAL]: 'dma_fence_enable_signal',
  [L.EV_FENCE_SIGNALED]: 'dma_fence_signaled',
  [L.EV_FENCE_WAIT_START]: 'dma_fence_wait_start',
  [L.EV_FENCE_WAIT_END]: 'dma_fence_wait_end',
  [L.EV_FENCE_DESTROY]: 'dma_fence_destroy',
  [L.EV_SIGNAL_DONE]: 'signal_callbacks_done',
  [L.EV_LOCK_CONTENDED]: 'lock_contended',
  [L.EV_LOCK_ACQUIRED]: 'lock_acquired',
  [L.EV_LOCK_RELEASED]: 'lock_released',
  [L.EV_LOCK_OWNER_DIED]: 'lock_owner_died',
  [L.EV_CB_QUEUED]: 'callback_queued',
  [L.EV_CB_RUN]: 'callback_run',
  [L.EV_CB_DONE]: 'callback_done',
  [L.EV_UAF]: 'use_after_free',
  [L.EV_OP_SUBMITTED]: 'operation_submitted',
  [L.EV_OP_CANCELLED]: 'operation_cancelled',
  [L.EV_OP_ENDED]: 'operation_ended',
  [L.EV_THREAD_REAPED]: 'worker_reaped',
};

const OP_ENDS: Readonly<Record<number, string>> = {
  [L.OP_END_COMPLETED]: 'completed',
  [L.OP_END_CANCELED]: 'cancelled',
  [L.OP_END_DELETED]: 'deleted',
  [L.OP_END_ABORTED]: 'aborted (exporter died)',
};

const ACQUIRED: Readonly<Record<number, string>> = {
  [ACQ_OK]: 'acquired',
  [ACQ_OWNER_DIED]: 'acquired (owner died)',
  [ACQ_TIMEOUT]: 'timed out',
};

const UAF_ACCESS: Readonly<Record<number, string>> = {
  [L.UAF_ACCESS_OTHER]: 'other',
  [L.UAF_ACCESS_FENCE]: 'fence',
  [L.UAF_ACCESS_LOCK]: 'lock',
  [L.UAF_ACCESS_FENCE_LOCK]: 'fence-lock',
};

/** What the export learned about one fence (identified by payload word and generation). */
interface FenceInfo {
  context: number;
  seqno: number;
  opsId: number;
  inline: boolean;
  init?: { ts: number; thread: number };
  signaled?: { ts: number; thread: number; error: number };
  destroyTs?: number;
}

/** A slice on a thread, before it is given its track. */
interface Slice {
  thread: number;
  name: string;
  cat: string;
  /** Whole ns from the origin (the format's µs, with ns precision, compared exactly). */
  start: number;
  end: number;
  args: Record<string, unknown>;
  /** Filled in by the lane assignment. */
  tid: number;
}

interface Flow {
  from: Slice;
  /** Where inside `from` the arrow starts (ns). */
  fromTs: number;
  to: Slice;
  toTs: number;
  name: string;
}

const key = (fw: number, gen: number) => `${fw}:${gen & 0xffffff}`;

/**
 * Converts a snapshot to a Chrome trace. Events whose partner was lost (overwritten in a full
 * ring) are left out; spans still open when the session ended (a wait that never returned, a
 * fence never signaled) are closed at its end and marked `open: true`.
 */
export function toChromeTrace(snap: TraceSnapshot, names: ExportNames = {}, placement: Placement = {}): ChromeTrace {
  const origin = placement.origin ?? Math.min(snap.startMs, ...snap.threads.map((t) => t.events[0]?.ts ?? Infinity));
  const THREADS_PID = placement.pid ?? 1;
  const CONTEXTS_PID = THREADS_PID + 1;
  const prefix = placement.label ? `${placement.label}: ` : '';
  const nsOf = (ms: number) => Math.round((ms - origin) * 1e6);
  const us = (ns: number) => ns / 1e3;
  const endNs = nsOf(Math.max(snap.endMs, ...snap.threads.map((t) => t.events[t.events.length - 1]?.ts ?? -Infinity)));
  const out: ChromeEvent[] = [];
  const threadName = (i: number) => snap.threads[i].name;

  /** Name of whoever had thread slot `slot` around time `ms`: the ring whose events cover it, else any with that slot. */
  const bySlot = (slot: number, ms: number): string => {
    const cands = snap.threads.filter((t) => t.slot === slot);
    const hit = cands.find((t) => t.events.length > 0 && t.events[0].ts <= ms && ms <= t.events[t.events.length - 1].ts) ?? cands[0];
    return hit ? hit.name : slot < 0 ? 'nobody' : (snap.slotNames[slot] ?? `thread slot ${slot}`);
  };

  // Pass 1: the fences.
  const fences = new Map<string, FenceInfo>();
  const fence = (fw: number, gen: number, ctx: number, seqno: number): FenceInfo => {
    let f = fences.get(key(fw, gen));
    if (!f) fences.set(key(fw, gen), (f = { context: ctx, seqno: seqno >>> 0, opsId: 0, inline: true }));
    return f;
  };
  snap.threads.forEach((t, ti) => {
    for (const e of t.events) {
      if (e.kind === L.EV_FENCE_INIT) {
        const f = fence(e.a, e.b, e.c, e.d);
        f.seqno = (e.bits >>> L.INIT_SEQNO_HI_SHIFT) * 0x100000000 + (e.d >>> 0);
        f.opsId = e.e;
        f.inline = (e.bits & L.INIT_INLINE_LOCK) !== 0;
        f.init = { ts: e.ts, thread: ti };
      } else if (e.kind === L.EV_FENCE_SIGNALED) {
        fence(e.a, e.b, e.c, e.d).signaled = { ts: e.ts, thread: ti, error: e.e };
      } else if (e.kind === L.EV_FENCE_DESTROY) {
        fence(e.a, e.b, e.c, e.d).destroyTs = e.ts;
      }
    }
  });
  const label = (fw: number, gen: number): string => {
    const f = fences.get(key(fw, gen));
    return f ? `${f.context}:${f.seqno}` : `@${fw * 4}`;
  };
  const fenceArgs = (fw: number, gen: number): Record<string, unknown> => {
    const f = fences.get(key(fw, gen));
    return f ? { context: f.context, seqno: f.seqno } : { fence: `@${fw * 4} gen ${gen}` };
  };

  // Pass 2: slices and instants per thread.
  const slices: Slice[] = [];
  const signalSlices = new Map<string, Slice>(); // fence key → its signal slice
  const cbRuns = new Map<string, Slice>(); // node key → the slice of its run
  const queued: { node: string; thread: number; ts: number; fence: string }[] = [];
  const waits: { slice: Slice; fence: string; woken: boolean }[] = [];
  const instant = (ti: number, e: RawEvent, name: string, args: Record<string, unknown>, cat: string) =>
    out.push({ name, ph: 'i', s: 't', cat, pid: THREADS_PID, tid: -(ti + 1), ts: us(nsOf(e.ts)), args });
  snap.threads.forEach((t, ti) => {
    const open = new Map<string, { e: RawEvent; slice?: Slice }[]>(); // pending begins by a per-kind key
    const push = (k: string, v: { e: RawEvent; slice?: Slice }) => (open.get(k) ?? open.set(k, []).get(k)!).push(v);
    const take = (k: string) => open.get(k)?.shift();
    const slice = (name: string, cat: string, start: number, end: number, args: Record<string, unknown>): Slice => {
      const s = { thread: ti, name, cat, start: nsOf(start), end: Math.max(nsOf(end), nsOf(start) + MIN_DUR_NS), args, tid: 0 };
      slices.push(s);
      return s;
    };
    for (const e of t.events) {
      const name = EVENT_NAMES[e.kind] ?? `event ${e.kind}`;
      switch (e.kind) {
        case L.EV_FENCE_INIT:
        case L.EV_FENCE_EMIT:
        case L.EV_FENCE_ENABLE_SIGNAL:
        case L.EV_FENCE_DESTROY:
          instant(ti, e, name, fenceArgs(e.a, e.b), 'fence');
          break;
        case L.EV_FENCE_SIGNALED: {
          const args = { ...fenceArgs(e.a, e.b), ...(e.e ? { error: e.e, errno: errnoName(e.e) } : {}) };
          const s = slice(`signal ${label(e.a, e.b)}`, 'fence', e.ts, e.ts, args);
          signalSlices.set(key(e.a, e.b), s);
          push(`sig:${key(e.a, e.b)}`, { e, slice: s });
          break;
        }
        case L.EV_SIGNAL_DONE: {
          const b = take(`sig:${key(e.a, e.b)}`);
          if (b?.slice) {
            b.slice.end = Math.max(b.slice.end, nsOf(e.ts));
            b.slice.args.callbacksRunHere = e.c;
            b.slice.args.callbacksQueued = e.d;
          }
          break;
        }
        case L.EV_FENCE_WAIT_START:
          push(`wait:${key(e.a, e.b)}`, { e });
          break;
        case L.EV_FENCE_WAIT_END: {
          const b = take(`wait:${key(e.a, e.b)}`);
          if (!b) break; // its start was overwritten
          const outcome = e.e === 1 ? 'signaled' : e.e === 0 ? 'timed out' : 'aborted';
          const s = slice(`wait ${label(e.a, e.b)}${e.e === 1 ? '' : ` (${outcome})`}`, 'wait', b.e.ts, e.ts, {
            ...fenceArgs(e.a, e.b), mode: b.e.e === 1 ? 'async' : 'blocking', outcome,
          });
          waits.push({ slice: s, fence: key(e.a, e.b), woken: e.e === 1 });
          break;
        }
        case L.EV_LOCK_CONTENDED:
          push(`lock:${e.a}`, { e });
          break;
        case L.EV_LOCK_ACQUIRED: {
          const b = take(`lock:${e.a}`);
          if (b)
            slice(`lock wait @${e.a * 4}`, 'lock', b.e.ts, e.ts, {
              lock: e.a * 4, holder: bySlot(b.e.b, b.e.ts), outcome: ACQUIRED[e.b] ?? e.b,
            });
          if (e.b !== ACQ_TIMEOUT) push(`hold:${e.a}`, { e });
          break;
        }
        case L.EV_LOCK_RELEASED: {
          const b = take(`hold:${e.a}`);
          if (b) slice(`lock held @${e.a * 4}`, 'lock', b.e.ts, e.ts, { lock: e.a * 4, contended: true });
          break;
        }
        case L.EV_LOCK_OWNER_DIED:
          instant(ti, e, name, { lock: e.a * 4 }, 'lock');
          break;
        case L.EV_CB_QUEUED:
          queued.push({ node: key(e.a, e.b), thread: ti, ts: e.ts, fence: key(e.d, e.e) });
          instant(ti, e, name, { ...fenceArgs(e.d, e.e), to: bySlot(e.c, e.ts) }, 'callback');
          break;
        case L.EV_CB_RUN:
          push(`cb:${key(e.a, e.b)}`, { e });
          break;
        case L.EV_CB_DONE: {
          const b = take(`cb:${key(e.a, e.b)}`);
          if (!b) break;
          const s = slice(`callback ${label(b.e.c, b.e.d)}`, 'callback', b.e.ts, e.ts, {
            ...fenceArgs(b.e.c, b.e.d), ranBy: b.e.e === 1 ? 'the signaling thread' : 'its owner, from the inbox',
          });
          cbRuns.set(key(e.a, e.b), s);
          break;
        }
        case L.EV_UAF: {
          const freedBy = (e.d & 0x3ff) - 1;
          const nowOwner = ((e.d >>> 10) & 0x3ff) - 1;
          const nowType = e.c >>> 24;
          instant(ti, e, name, {
            access: UAF_ACCESS[(e.d >>> 20) & 0xf] ?? 'other',
            block: e.a * 4,
            takenGeneration: e.b,
            currentGeneration: e.c & 0xffffff,
            freedBy: bySlot(freedBy, e.ts),
            nowHolds: nowType === 0 ? 'free memory' : `${BLOCK_TYPE_NAMES[nowType] ?? `type ${nowType}`} of ${bySlot(nowOwner, e.ts)}`,
            ...(e.e ? { fence: label(e.e * 2 + BLOCK_HEADER_WORDS, e.bits) } : {}),
          }, 'sanitizer');
          break;
        }
        case L.EV_OP_SUBMITTED:
          instant(ti, e, name, { operation: e.e, ...fenceArgs(e.c, e.d) }, 'driver');
          break;
        case L.EV_OP_CANCELLED:
        case L.EV_OP_ENDED:
          instant(ti, e, name, { how: OP_ENDS[e.c] ?? e.c, status: e.d < 0 ? errnoName(e.d) : e.d }, 'driver');
          break;
        case L.EV_THREAD_REAPED:
          instant(ti, e, name, { slot: e.a, thread: bySlot(e.a, e.ts - 1e-6), threadId: e.c }, 'thread');
          break;
        default:
          instant(ti, e, name, { a: e.a, b: e.b, c: e.c, d: e.d, e: e.e }, 'other');
      }
    }
    // Begins without an end: still in progress when the session ended.
    for (const [k, list] of open) {
      for (const { e, slice: s } of list) {
        if (s) continue; // a signal slice is complete without its done event
        if (k.startsWith('wait:')) {
          const sl = slice(`wait ${label(e.a, e.b)} (still waiting)`, 'wait', e.ts, snap.endMs, { ...fenceArgs(e.a, e.b), open: true });
          waits.push({ slice: sl, fence: key(e.a, e.b), woken: false });
        } else if (k.startsWith('lock:')) {
          slice(`lock wait @${e.a * 4} (still waiting)`, 'lock', e.ts, snap.endMs, { lock: e.a * 4, holder: bySlot(e.b, e.ts), open: true });
        } else if (k.startsWith('hold:')) {
          slice(`lock held @${e.a * 4} (still held)`, 'lock', e.ts, snap.endMs, { lock: e.a * 4, open: true });
        } else if (k.startsWith('cb:')) {
          slice(`callback ${label(e.c, e.d)} (still running)`, 'callback', e.ts, snap.endMs, { ...fenceArgs(e.c, e.d), open: true });
        }
      }
    }
  });

  // Flows: signal → the waits it ended, signal → callbacks it queued elsewhere.
  const flows: Flow[] = [];
  for (const w of waits) {
    const sig = signalSlices.get(w.fence);
    if (!w.woken || !sig || sig.thread === w.slice.thread) continue;
    flows.push({ from: sig, fromTs: sig.start + FLOW_INSET_NS, to: w.slice, toTs: w.slice.end - FLOW_INSET_NS, name: 'signal→wake' });
  }
  for (const q of queued) {
    const sig = signalSlices.get(q.fence);
    const run = cbRuns.get(q.node);
    if (!sig || !run || sig.thread !== q.thread) continue;
    flows.push({ from: sig, fromTs: sig.start + FLOW_INSET_NS, to: run, toTs: run.start + FLOW_INSET_NS, name: 'signal→callback' });
  }

  // Tracks: nesting lanes per thread, then the slices.
  const tids = assignLanes(snap.threads, slices);
  for (const s of slices)
    out.push({ name: s.name, ph: 'X', cat: s.cat, pid: THREADS_PID, tid: s.tid, ts: us(s.start), dur: us(s.end - s.start), args: s.args });
  // Instants were written with -(thread + 1): their thread's first track.
  for (const ev of out) if (ev.pid === THREADS_PID && ev.tid < 0) ev.tid = tids[-ev.tid - 1][0];
  flows.forEach((f, id) => {
    out.push({ name: f.name, ph: 's', cat: 'flow', id: id + 1, pid: THREADS_PID, tid: f.from.tid, ts: us(f.fromTs) });
    out.push({ name: f.name, ph: 'f', bp: 'e', cat: 'flow', id: id + 1, pid: THREADS_PID, tid: f.to.tid, ts: us(f.toTs) });
  });

  // Fence contexts: each fence's life, init → signaled (or destroyed, or still pending at the end).
  const meta: ChromeEvent[] = [
    { name: 'process_name', ph: 'M', pid: THREADS_PID, tid: 0, args: { name: `${prefix}threads` } },
    { name: 'process_sort_index', ph: 'M', pid: THREADS_PID, tid: 0, args: { sort_index: THREADS_PID } },
    { name: 'process_name', ph: 'M', pid: CONTEXTS_PID, tid: 0, args: { name: `${prefix}fence contexts` } },
    { name: 'process_sort_index', ph: 'M', pid: CONTEXTS_PID, tid: 0, args: { sort_index: CONTEXTS_PID } },
  ];
  snap.threads.forEach((t, ti) => {
    tids[ti].forEach((tid, lane) => {
      meta.push({ name: 'thread_name', ph: 'M', pid: THREADS_PID, tid, args: { name: lane === 0 ? t.name : `${t.name} · ${lane + 1}` } });
      meta.push({ name: 'thread_sort_index', ph: 'M', pid: THREADS_PID, tid, args: { sort_index: (ti + 1) * 1000 + lane } });
    });
  });
  const byContext = new Map<number, { f: FenceInfo; start: number; end: number; open: boolean }[]>();
  for (const f of fences.values()) {
    if (!f.init) continue; // created before the session (or its init overwritten): no start to draw
    const endMs = f.signaled?.ts ?? f.destroyTs;
    const list = byContext.get(f.context) ?? byContext.set(f.context, []).get(f.context)!;
    list.push({ f, start: nsOf(f.init.ts), end: endMs === undefined ? endNs : nsOf(endMs), open: endMs === undefined });
  }
  let nextTid = 1;
  for (const ctx of [...byContext.keys()].sort((a, b) => a - b)) {
    const list = byContext.get(ctx)!.sort((a, b) => a.start - b.start || a.end - b.end);
    const laneEnds: number[] = [];
    const laneTids: number[] = [];
    const driver = list.map((x) => names.opsName?.(x.f.opsId)).find((n) => n !== undefined);
    for (const x of list) {
      const end = Math.max(x.end, x.start + MIN_DUR_NS);
      let lane = laneEnds.findIndex((e) => e <= x.start);
      if (lane < 0) {
        lane = laneEnds.length;
        laneEnds.push(0);
        const tid = nextTid++;
        laneTids.push(tid);
        const trackName = lane === 0 ? `context ${ctx}${driver ? ` (${driver})` : ''}` : `context ${ctx} · ${lane + 1}`;
        meta.push({ name: 'thread_name', ph: 'M', pid: CONTEXTS_PID, tid, args: { name: trackName } });
        meta.push({ name: 'thread_sort_index', ph: 'M', pid: CONTEXTS_PID, tid, args: { sort_index: ctx * 1000 + lane } });
      }
      laneEnds[lane] = end;
      const f = x.f;
      const err = f.signaled?.error ?? 0;
      out.push({
        name: `${f.context}:${f.seqno}${x.open ? (f.destroyTs === undefined ? ' (pending)' : '') : err ? ` ${errnoName(err)}` : ''}`,
        ph: 'X',
        cat: 'fence',
        pid: CONTEXTS_PID,
        tid: laneTids[lane],
        ts: us(x.start),
        dur: us(end - x.start),
        args: {
          context: f.context,
          seqno: f.seqno,
          lock: f.inline ? 'inline' : 'borrowed',
          createdBy: threadName(f.init!.thread),
          ...(f.signaled ? { signaledBy: threadName(f.signaled.thread) } : { open: true }),
          ...(err ? { error: err, errno: errnoName(err) } : {}),
          ...(driver ? { driver: names.opsName?.(f.opsId) } : {}),
        },
      });
    }
  }

  const lost = snap.threads.reduce((n, t) => n + t.lost, 0);
  return {
    traceEvents: [...meta, ...out],
    displayTimeUnit: 'ns',
    otherData: {
      producer: 'fencelab',
      session: snap.session,
      // Trace clock (ms) of time 0: a later session placed with this origin lines up with this one.
      originMs: origin,
      threads: snap.threads.length,
      eventsRecorded: snap.threads.reduce((n, t) => n + t.recorded, 0),
      eventsLost: lost,
      ...(lost > 0 ? { note: 'rings were full: the oldest events were overwritten (start a session with more events per thread)' } : {}),
    },
  };
}

/**
 * Gives every slice a track (tid) so that slices on one track nest: a slice goes to the first lane
 * of its thread where it either starts after everything open has ended or lies inside the
 * innermost open slice. Returns each thread's tids, lane 0 first.
 */
function assignLanes(threads: ThreadEvents[], slices: Slice[]): number[][] {
  const tids: number[][] = threads.map(() => []);
  const lanes: number[][][] = threads.map(() => []); // per thread, per lane: stack of open ends
  let next = 1;
  const sorted = [...slices].sort((a, b) => a.start - b.start || b.end - a.end);
  for (let ti = 0; ti < threads.length; ti++) tids[ti].push(next++);
  // Extra lanes get tids after every thread's first lane, in order of need.
  for (const s of sorted) {
    const ls = lanes[s.thread];
    let lane = 0;
    for (; ; lane++) {
      if (lane === ls.length) ls.push([]);
      const stack = ls[lane];
      while (stack.length > 0 && stack[stack.length - 1] <= s.start) stack.pop();
      if (stack.length === 0 || stack[stack.length - 1] >= s.end) {
        stack.push(s.end);
        break;
      }
    }
    while (tids[s.thread].length <= lane) tids[s.thread].push(next++);
    s.tid = tids[s.thread][lane];
  }
  return tids;
}

/**
 * One trace from several (each made with its own `placement.pid`, two apart): events side by
 * side, flow ids renumbered so that they stay unique, each part's `otherData` kept under `parts`.
 */
export function mergeChromeTraces(parts: ChromeTrace[]): ChromeTrace {
  const traceEvents: ChromeEvent[] = [];
  let base = 0;
  for (const p of parts) {
    let top = 0;
    for (const e of p.traceEvents) {
      if (e.id !== undefined) {
        traceEvents.push({ ...e, id: e.id + base });
        top = Math.max(top, e.id);
      } else traceEvents.push(e);
    }
    base += top;
  }
  return { traceEvents, displayTimeUnit: 'ns', otherData: { producer: 'fencelab', parts: parts.map((p) => p.otherData) } };
}
