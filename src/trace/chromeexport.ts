/**
 * The passes of the Chrome trace-event export (`toChromeTrace`): the fences of a snapshot, each
 * thread's slices and instants, the flows between them, the thread tracks (nesting lanes) and the
 * fence-context tracks. One {@link ChromeExport} per conversion; pure, like the export.
 */
import { BLOCK_HEADER_WORDS, BLOCK_TYPE_NAMES } from '../arena/layout.js';
import { errnoName } from '../errors.js';
import { ACQ_TIMEOUT } from '../locks/futex.js';
import type { ChromeEvent, ChromeTrace, ExportNames, Placement } from './chrome.js';
import { ACQUIRED, assignLanes, EVENT_NAMES, key, OP_ENDS, PAIR_BEGINS, pairKey, UAF_ACCESS, type FenceInfo, type Flow, type Slice } from './chromeparts.js';
import * as L from './layout.js';
import type { RawEvent, ThreadEvents, TraceSnapshot } from './snapshot.js';

/** Shortest slice drawn (ns): a signal without callbacks has a single timestamp. */
const MIN_DUR_NS = 100;
/** A flow end sits this far (ns) inside its slice, so that both viewers bind it to that slice. */
const FLOW_INSET_NS = 1;

/** A begin waiting for its end on one thread (and the slice it opened, for a signal). */
interface Begin {
  e: RawEvent;
  slice?: Slice;
}

/**
 * One conversion of a snapshot to a Chrome trace, pass by pass ({@link ChromeExport.run}). Events
 * whose partner was lost (overwritten in a full ring) are left out; spans still open when the
 * session ended are closed at its end and marked `open: true`.
 */
export class ChromeExport {
  private readonly origin: number;
  private readonly threadsPid: number;
  private readonly contextsPid: number;
  private readonly prefix: string;
  private readonly endNs: number;
  private readonly out: ChromeEvent[] = [];
  private readonly fences = new Map<string, FenceInfo>();
  private readonly slices: Slice[] = [];
  private readonly signalSlices = new Map<string, Slice>(); // fence key → its signal slice
  private readonly cbRuns = new Map<string, Slice>(); // node key → the slice of its run
  private readonly queued: { node: string; thread: number; ts: number; fence: string }[] = [];
  private readonly waits: { slice: Slice; fence: string; woken: boolean }[] = [];
  private readonly flows: Flow[] = [];
  /** The thread of the event pass, and its pending begins by a per-kind key. */
  private ti = 0;
  private open = new Map<string, Begin[]>();

  constructor(private readonly snap: TraceSnapshot, private readonly names: ExportNames, placement: Placement) {
    this.origin = placement.origin ?? Math.min(snap.startMs, ...snap.threads.map((t) => t.events[0]?.ts ?? Infinity));
    this.threadsPid = placement.pid ?? 1;
    this.contextsPid = this.threadsPid + 1;
    this.prefix = placement.label ? `${placement.label}: ` : '';
    this.endNs = this.nsOf(Math.max(snap.endMs, ...snap.threads.map((t) => t.events[t.events.length - 1]?.ts ?? -Infinity)));
  }

  /** Runs the passes in order. Returns the trace, metadata first. */
  run(): ChromeTrace {
    this.collectFences();
    this.snap.threads.forEach((t, ti) => this.threadEvents(t, ti));
    this.linkFlows();
    const tids = assignLanes(this.snap.threads, this.slices);
    this.writeThreadTracks(tids);
    const meta = this.metadata(tids);
    this.writeContextTracks(meta);
    return this.result(meta);
  }

  private nsOf(ms: number): number {
    return Math.round((ms - this.origin) * 1e6);
  }

  private threadName(i: number): string {
    return this.snap.threads[i].name;
  }

  /** Name of whoever had thread slot `slot` around time `ms`: the ring whose events cover it, else any with that slot. */
  private bySlot(slot: number, ms: number): string {
    const cands = this.snap.threads.filter((t) => t.slot === slot);
    const hit = cands.find((t) => t.events.length > 0 && t.events[0].ts <= ms && ms <= t.events[t.events.length - 1].ts) ?? cands[0];
    return hit ? hit.name : slot < 0 ? 'nobody' : (this.snap.slotNames[slot] ?? `thread slot ${slot}`);
  }

  private fence(fw: number, gen: number, ctx: number, seqno: number): FenceInfo {
    let f = this.fences.get(key(fw, gen));
    if (!f) this.fences.set(key(fw, gen), (f = { context: ctx, seqno: seqno >>> 0, opsId: 0, inline: true }));
    return f;
  }

  private label(fw: number, gen: number): string {
    const f = this.fences.get(key(fw, gen));
    return f ? `${f.context}:${f.seqno}` : `@${fw * 4}`;
  }

  private fenceArgs(fw: number, gen: number): Record<string, unknown> {
    const f = this.fences.get(key(fw, gen));
    return f ? { context: f.context, seqno: f.seqno } : { fence: `@${fw * 4} gen ${gen}` };
  }

  /** Pass 1: the fences (context, seqno, ops, lock kind, init, signal, destroy). */
  private collectFences(): void {
    this.snap.threads.forEach((t, ti) => {
      for (const e of t.events) {
        if (e.kind === L.EV_FENCE_INIT) {
          const f = this.fence(e.a, e.b, e.c, e.d);
          f.seqno = (e.bits >>> L.INIT_SEQNO_HI_SHIFT) * 0x100000000 + (e.d >>> 0);
          f.opsId = e.e;
          f.inline = (e.bits & L.INIT_INLINE_LOCK) !== 0;
          f.init = { ts: e.ts, thread: ti };
        } else if (e.kind === L.EV_FENCE_SIGNALED) {
          this.fence(e.a, e.b, e.c, e.d).signaled = { ts: e.ts, thread: ti, error: e.e };
        } else if (e.kind === L.EV_FENCE_DESTROY) {
          this.fence(e.a, e.b, e.c, e.d).destroyTs = e.ts;
        }
      }
    });
  }

  private instant(e: RawEvent, name: string, args: Record<string, unknown>, cat: string): void {
    this.out.push({ name, ph: 'i', s: 't', cat, pid: this.threadsPid, tid: -(this.ti + 1), ts: this.nsOf(e.ts) / 1e3, args });
  }

  private push(k: string, v: Begin): void {
    (this.open.get(k) ?? this.open.set(k, []).get(k)!).push(v);
  }

  private take(k: string): Begin | undefined {
    return this.open.get(k)?.shift();
  }

  private slice(name: string, cat: string, start: number, end: number, args: Record<string, unknown>): Slice {
    const s = { thread: this.ti, name, cat, start: this.nsOf(start), end: Math.max(this.nsOf(end), this.nsOf(start) + MIN_DUR_NS), args, tid: 0 };
    this.slices.push(s);
    return s;
  }

  /** Pass 2: one thread's slices and instants, then its begins without an end. */
  private threadEvents(t: ThreadEvents, ti: number): void {
    this.ti = ti;
    this.open = new Map();
    for (const e of t.events) this.event(e, EVENT_NAMES[e.kind] ?? `event ${e.kind}`);
    this.closeOpen();
  }

  private event(e: RawEvent, name: string): void {
    const begins = PAIR_BEGINS.get(e.kind);
    if (begins) {
      this.push(begins(e), { e });
      return;
    }
    switch (e.kind) {
      case L.EV_FENCE_INIT:
      case L.EV_FENCE_EMIT:
      case L.EV_FENCE_ENABLE_SIGNAL:
      case L.EV_FENCE_DESTROY:
        this.instant(e, name, this.fenceArgs(e.a, e.b), 'fence');
        break;
      case L.EV_FENCE_SIGNALED: {
        const args = { ...this.fenceArgs(e.a, e.b), ...(e.e ? { error: e.e, errno: errnoName(e.e) } : {}) };
        const s = this.slice(`signal ${this.label(e.a, e.b)}`, 'fence', e.ts, e.ts, args);
        this.signalSlices.set(key(e.a, e.b), s);
        this.push(pairKey.signal(e), { e, slice: s });
        break;
      }
      case L.EV_SIGNAL_DONE: {
        const b = this.take(pairKey.signal(e));
        if (b?.slice) {
          b.slice.end = Math.max(b.slice.end, this.nsOf(e.ts));
          b.slice.args.callbacksRunHere = e.c;
          b.slice.args.callbacksQueued = e.d;
        }
        break;
      }
      case L.EV_FENCE_WAIT_END:
        this.waitEnd(e);
        break;
      case L.EV_LOCK_ACQUIRED:
        this.lockAcquired(e);
        break;
      case L.EV_LOCK_RELEASED: {
        const b = this.take(pairKey.hold(e));
        if (b) this.slice(`lock held @${e.a * 4}`, 'lock', b.e.ts, e.ts, { lock: e.a * 4, contended: true });
        break;
      }
      case L.EV_LOCK_OWNER_DIED:
        this.instant(e, name, { lock: e.a * 4 }, 'lock');
        break;
      case L.EV_CB_QUEUED:
        this.queued.push({ node: key(e.a, e.b), thread: this.ti, ts: e.ts, fence: key(e.d, e.e) });
        this.instant(e, name, { ...this.fenceArgs(e.d, e.e), to: this.bySlot(e.c, e.ts) }, 'callback');
        break;
      case L.EV_CB_DONE:
        this.callbackDone(e);
        break;
      case L.EV_UAF:
        this.instant(e, name, this.uafArgs(e), 'sanitizer');
        break;
      case L.EV_OP_SUBMITTED:
        this.instant(e, name, { operation: e.e, ...this.fenceArgs(e.c, e.d) }, 'driver');
        break;
      case L.EV_OP_CANCELLED:
      case L.EV_OP_ENDED:
        this.instant(e, name, { how: OP_ENDS[e.c] ?? e.c, status: e.d < 0 ? errnoName(e.d) : e.d }, 'driver');
        break;
      case L.EV_THREAD_REAPED:
        this.instant(e, name, { slot: e.a, thread: this.bySlot(e.a, e.ts - 1e-6), threadId: e.c }, 'thread');
        break;
      default:
        this.instant(e, name, { a: e.a, b: e.b, c: e.c, d: e.d, e: e.e }, 'other');
    }
  }

  private waitEnd(e: RawEvent): void {
    const b = this.take(pairKey.wait(e));
    if (!b) return; // its start was overwritten
    const outcome = e.e === 1 ? 'signaled' : e.e === 0 ? 'timed out' : 'aborted';
    const s = this.slice(`wait ${this.label(e.a, e.b)}${e.e === 1 ? '' : ` (${outcome})`}`, 'wait', b.e.ts, e.ts, {
      ...this.fenceArgs(e.a, e.b), mode: b.e.e === 1 ? 'async' : 'blocking', outcome,
    });
    this.waits.push({ slice: s, fence: key(e.a, e.b), woken: e.e === 1 });
  }

  private lockAcquired(e: RawEvent): void {
    const b = this.take(pairKey.lockWait(e));
    if (b)
      this.slice(`lock wait @${e.a * 4}`, 'lock', b.e.ts, e.ts, {
        lock: e.a * 4, holder: this.bySlot(b.e.b, b.e.ts), outcome: ACQUIRED[e.b] ?? e.b,
      });
    if (e.b !== ACQ_TIMEOUT) this.push(pairKey.hold(e), { e });
  }

  private callbackDone(e: RawEvent): void {
    const b = this.take(pairKey.callback(e));
    if (!b) return;
    const s = this.slice(`callback ${this.label(b.e.c, b.e.d)}`, 'callback', b.e.ts, e.ts, {
      ...this.fenceArgs(b.e.c, b.e.d), ranBy: b.e.e === 1 ? 'the signaling thread' : 'its owner, from the inbox',
    });
    this.cbRuns.set(key(e.a, e.b), s);
  }

  private uafArgs(e: RawEvent): Record<string, unknown> {
    const freedBy = (e.d & 0x3ff) - 1;
    const nowOwner = ((e.d >>> 10) & 0x3ff) - 1;
    const nowType = e.c >>> 24;
    return {
      access: UAF_ACCESS[(e.d >>> 20) & 0xf] ?? 'other',
      block: e.a * 4,
      takenGeneration: e.b,
      currentGeneration: e.c & 0xffffff,
      freedBy: this.bySlot(freedBy, e.ts),
      nowHolds: nowType === 0 ? 'free memory' : `${BLOCK_TYPE_NAMES[nowType] ?? `type ${nowType}`} of ${this.bySlot(nowOwner, e.ts)}`,
      ...(e.e ? { fence: this.label(e.e * 2 + BLOCK_HEADER_WORDS, e.bits) } : {}),
    };
  }

  /** Begins without an end: still in progress when the session ended. */
  private closeOpen(): void {
    const endMs = this.snap.endMs;
    for (const [k, list] of this.open) {
      for (const { e, slice: s } of list) {
        if (s) continue; // a signal slice is complete without its done event
        if (k.startsWith('wait:')) {
          const sl = this.slice(`wait ${this.label(e.a, e.b)} (still waiting)`, 'wait', e.ts, endMs, { ...this.fenceArgs(e.a, e.b), open: true });
          this.waits.push({ slice: sl, fence: key(e.a, e.b), woken: false });
        } else if (k.startsWith('lock:')) {
          this.slice(`lock wait @${e.a * 4} (still waiting)`, 'lock', e.ts, endMs, { lock: e.a * 4, holder: this.bySlot(e.b, e.ts), open: true });
        } else if (k.startsWith('hold:')) {
          this.slice(`lock held @${e.a * 4} (still held)`, 'lock', e.ts, endMs, { lock: e.a * 4, open: true });
        } else if (k.startsWith('cb:')) {
          this.slice(`callback ${this.label(e.c, e.d)} (still running)`, 'callback', e.ts, endMs, { ...this.fenceArgs(e.c, e.d), open: true });
        }
      }
    }
  }

  /** Pass 3, flows: signal → the waits it ended, signal → callbacks it queued elsewhere. */
  private linkFlows(): void {
    for (const w of this.waits) {
      const sig = this.signalSlices.get(w.fence);
      if (!w.woken || !sig || sig.thread === w.slice.thread) continue;
      this.flows.push({ from: sig, fromTs: sig.start + FLOW_INSET_NS, to: w.slice, toTs: w.slice.end - FLOW_INSET_NS, name: 'signal→wake' });
    }
    for (const q of this.queued) {
      const sig = this.signalSlices.get(q.fence);
      const run = this.cbRuns.get(q.node);
      if (!sig || !run || sig.thread !== q.thread) continue;
      this.flows.push({ from: sig, fromTs: sig.start + FLOW_INSET_NS, to: run, toTs: run.start + FLOW_INSET_NS, name: 'signal→callback' });
    }
  }

  /** Pass 4, thread tracks: the slices on their lanes, the instants on their thread's first, the flows. */
  private writeThreadTracks(tids: number[][]): void {
    const pid = this.threadsPid;
    const us = (ns: number) => ns / 1e3;
    for (const s of this.slices)
      this.out.push({ name: s.name, ph: 'X', cat: s.cat, pid, tid: s.tid, ts: us(s.start), dur: us(s.end - s.start), args: s.args });
    // Instants were written with -(thread + 1): their thread's first track.
    for (const ev of this.out) if (ev.pid === pid && ev.tid < 0) ev.tid = tids[-ev.tid - 1][0];
    this.flows.forEach((f, id) => {
      this.out.push({ name: f.name, ph: 's', cat: 'flow', id: id + 1, pid, tid: f.from.tid, ts: us(f.fromTs) });
      this.out.push({ name: f.name, ph: 'f', bp: 'e', cat: 'flow', id: id + 1, pid, tid: f.to.tid, ts: us(f.toTs) });
    });
  }

  /** The process names and each thread lane's name and order. */
  private metadata(tids: number[][]): ChromeEvent[] {
    const [THREADS_PID, CONTEXTS_PID, prefix] = [this.threadsPid, this.contextsPid, this.prefix];
    const meta: ChromeEvent[] = [
      { name: 'process_name', ph: 'M', pid: THREADS_PID, tid: 0, args: { name: `${prefix}threads` } },
      { name: 'process_sort_index', ph: 'M', pid: THREADS_PID, tid: 0, args: { sort_index: THREADS_PID } },
      { name: 'process_name', ph: 'M', pid: CONTEXTS_PID, tid: 0, args: { name: `${prefix}fence contexts` } },
      { name: 'process_sort_index', ph: 'M', pid: CONTEXTS_PID, tid: 0, args: { sort_index: CONTEXTS_PID } },
    ];
    this.snap.threads.forEach((t, ti) => {
      tids[ti].forEach((tid, lane) => {
        meta.push({ name: 'thread_name', ph: 'M', pid: THREADS_PID, tid, args: { name: lane === 0 ? t.name : `${t.name} · ${lane + 1}` } });
        meta.push({ name: 'thread_sort_index', ph: 'M', pid: THREADS_PID, tid, args: { sort_index: (ti + 1) * 1000 + lane } });
      });
    });
    return meta;
  }

  /** Pass 5, fence contexts: each fence's life, init → signaled (or destroyed, or still pending at the end). */
  private writeContextTracks(meta: ChromeEvent[]): void {
    const byContext = new Map<number, { f: FenceInfo; start: number; end: number; open: boolean }[]>();
    for (const f of this.fences.values()) {
      if (!f.init) continue; // created before the session (or its init overwritten): no start to draw
      const endMs = f.signaled?.ts ?? f.destroyTs;
      const list = byContext.get(f.context) ?? byContext.set(f.context, []).get(f.context)!;
      list.push({ f, start: this.nsOf(f.init.ts), end: endMs === undefined ? this.endNs : this.nsOf(endMs), open: endMs === undefined });
    }
    let nextTid = 1;
    for (const ctx of [...byContext.keys()].sort((a, b) => a - b)) {
      const list = byContext.get(ctx)!.sort((a, b) => a.start - b.start || a.end - b.end);
      const laneEnds: number[] = [];
      const laneTids: number[] = [];
      const driver = list.map((x) => this.names.opsName?.(x.f.opsId)).find((n) => n !== undefined);
      for (const x of list) {
        const end = Math.max(x.end, x.start + MIN_DUR_NS);
        let lane = laneEnds.findIndex((e) => e <= x.start);
        if (lane < 0) {
          lane = laneEnds.length;
          laneEnds.push(0);
          const tid = nextTid++;
          laneTids.push(tid);
          const trackName = lane === 0 ? `context ${ctx}${driver ? ` (${driver})` : ''}` : `context ${ctx} · ${lane + 1}`;
          meta.push({ name: 'thread_name', ph: 'M', pid: this.contextsPid, tid, args: { name: trackName } });
          meta.push({ name: 'thread_sort_index', ph: 'M', pid: this.contextsPid, tid, args: { sort_index: ctx * 1000 + lane } });
        }
        laneEnds[lane] = end;
        this.out.push(this.fenceLife(x.f, x.start, end, x.open, laneTids[lane], driver));
      }
    }
  }

  /** The slice of one fence's life on its context's lane `tid`. */
  private fenceLife(f: FenceInfo, start: number, end: number, open: boolean, tid: number, driver: string | undefined): ChromeEvent {
    const err = f.signaled?.error ?? 0;
    return {
      name: `${f.context}:${f.seqno}${open ? (f.destroyTs === undefined ? ' (pending)' : '') : err ? ` ${errnoName(err)}` : ''}`,
      ph: 'X',
      cat: 'fence',
      pid: this.contextsPid,
      tid,
      ts: start / 1e3,
      dur: (end - start) / 1e3,
      args: {
        context: f.context,
        seqno: f.seqno,
        lock: f.inline ? 'inline' : 'borrowed',
        createdBy: this.threadName(f.init!.thread),
        ...(f.signaled ? { signaledBy: this.threadName(f.signaled.thread) } : { open: true }),
        ...(err ? { error: err, errno: errnoName(err) } : {}),
        ...(driver ? { driver: this.names.opsName?.(f.opsId) } : {}),
      },
    };
  }

  private result(meta: ChromeEvent[]): ChromeTrace {
    const snap = this.snap;
    const lost = snap.threads.reduce((n, t) => n + t.lost, 0);
    return {
      traceEvents: [...meta, ...this.out],
      displayTimeUnit: 'ns',
      otherData: {
        producer: 'fencelab',
        session: snap.session,
        // Trace clock (ms) of time 0: a later session placed with this origin lines up with this one.
        originMs: this.origin,
        threads: snap.threads.length,
        eventsRecorded: snap.threads.reduce((n, t) => n + t.recorded, 0),
        eventsLost: lost,
        ...(lost > 0 ? { note: 'rings were full: the oldest events were overwritten (start a session with more events per thread)' } : {}),
      },
    };
  }
}
