/**
 * The pieces the Chrome trace-event export (`toChromeTrace`) is built from: the names it gives
 * events and their codes, the records its passes build (fences, slices, flows), and the lane
 * assignment that makes slices on one track nest.
 */
import { ACQ_OK, ACQ_OWNER_DIED, ACQ_TIMEOUT } from '../locks/futex.js';
import * as L from './layout.js';
import type { RawEvent, ThreadEvents } from './snapshot.js';

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

export const OP_ENDS: Readonly<Record<number, string>> = {
  [L.OP_END_COMPLETED]: 'completed',
  [L.OP_END_CANCELED]: 'cancelled',
  [L.OP_END_DELETED]: 'deleted',
  [L.OP_END_ABORTED]: 'aborted (exporter died)',
};

export const ACQUIRED: Readonly<Record<number, string>> = {
  [ACQ_OK]: 'acquired',
  [ACQ_OWNER_DIED]: 'acquired (owner died)',
  [ACQ_TIMEOUT]: 'timed out',
};

export const UAF_ACCESS: Readonly<Record<number, string>> = {
  [L.UAF_ACCESS_OTHER]: 'other',
  [L.UAF_ACCESS_FENCE]: 'fence',
  [L.UAF_ACCESS_LOCK]: 'lock',
  [L.UAF_ACCESS_FENCE_LOCK]: 'fence-lock',
};

/** What the export learned about one fence (identified by payload word and generation). */
export interface FenceInfo {
  context: number;
  seqno: number;
  opsId: number;
  inline: boolean;
  init?: { ts: number; thread: number };
  signaled?: { ts: number; thread: number; error: number };
  destroyTs?: number;
}

/** A slice on a thread, before it is given its track. */
export interface Slice {
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

export interface Flow {
  from: Slice;
  /** Where inside `from` the arrow starts (ns). */
  fromTs: number;
  to: Slice;
  toTs: number;
  name: string;
}

export const key = (fw: number, gen: number) => `${fw}:${gen & 0xffffff}`;

/**
 * The key under which the event pass keeps a begin pending until the event that ends it: both
 * events of a pair name it from their own fields (a fence's key, a lock word, a callback node).
 */
export const pairKey = {
  /** A fence's signal, EV_FENCE_SIGNALED → EV_SIGNAL_DONE. */
  signal: (e: RawEvent) => `sig:${key(e.a, e.b)}`,
  /** A wait, EV_FENCE_WAIT_START → EV_FENCE_WAIT_END. */
  wait: (e: RawEvent) => `wait:${key(e.a, e.b)}`,
  /** A contended lock's wait, EV_LOCK_CONTENDED → EV_LOCK_ACQUIRED. */
  lockWait: (e: RawEvent) => `lock:${e.a}`,
  /** That lock's hold, EV_LOCK_ACQUIRED → EV_LOCK_RELEASED. */
  hold: (e: RawEvent) => `hold:${e.a}`,
  /** A callback's run, EV_CB_RUN → EV_CB_DONE. */
  callback: (e: RawEvent) => `cb:${key(e.a, e.b)}`,
};

/** The events that only begin a pair: the pass keeps them pending, under their pair key, for their end. */
export const PAIR_BEGINS: ReadonlyMap<number, (e: RawEvent) => string> = new Map([
  [L.EV_FENCE_WAIT_START, pairKey.wait],
  [L.EV_LOCK_CONTENDED, pairKey.lockWait],
  [L.EV_CB_RUN, pairKey.callback],
]);

/**
 * Gives every slice a track (tid) so that slices on one track nest: a slice goes to the first lane
 * of its thread where it either starts after everything open has ended or lies inside the
 * innermost open slice. Returns each thread's tids, lane 0 first.
 */
export function assignLanes(threads: ThreadEvents[], slices: Slice[]): number[][] {
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
