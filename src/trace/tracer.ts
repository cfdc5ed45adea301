/**
 * `arena.trace`: the library user's handle on the recorder — start and stop a session, name the
 * calling thread, read the events, export them for Perfetto.
 *
 * Also the two places where the layers above register what this low module cannot know: the
 * driver names of fence ops (for track names) and the arena dump walker behind `arena.describe()`.
 */
import type { Arena } from '../arena/arena.js';
import { Errors, describeValue, optionsArg, isArrayArg } from '../errors.js';
import { placementArg, toChromeTrace, type ChromeTrace, type Placement } from './chrome.js';
import type { ArenaDump } from './dump.js';
import * as L from './layout.js';
import { DEFAULT_RING_EVENTS, disposeTrace, nameThread, ownThreadName, startTrace, stopTrace, traceFlags } from './ring.js';
import { readTrace, type TraceSnapshot } from './snapshot.js';

/** What a session records (all by default). */
export type TraceCategory = 'fence' | 'wait' | 'lock' | 'callback' | 'driver' | 'thread' | 'sanitizer' | 'release';

const CATEGORY_BITS: Readonly<Record<TraceCategory, number>> = {
  fence: L.TC_FENCE,
  wait: L.TC_WAIT,
  lock: L.TC_LOCK,
  callback: L.TC_CALLBACK,
  driver: L.TC_DRIVER,
  thread: L.TC_THREAD,
  sanitizer: L.TC_SANITIZER,
  release: L.TC_RELEASE,
};
/** Every category, in order. */
export const TRACE_CATEGORIES = Object.keys(CATEGORY_BITS) as TraceCategory[];
/** What a session records unless told otherwise: everything but fence releases (see {@link TraceOptions.categories}). */
export const DEFAULT_TRACE_CATEGORIES = TRACE_CATEGORIES.filter((c) => (L.TC_DEFAULT & CATEGORY_BITS[c]) !== 0);

/** {@link Tracer.start}'s options. */
export interface TraceOptions {
  /** Events each thread's ring holds (default: what fills 256 KiB, 8,189); rounded up to fill its block. */
  eventsPerThread?: number;
  /**
   * Categories to record: 'fence' (init, emit, enable_signal, signaled), 'wait' (wait_start and
   * _end), 'lock' (contention, contended holds, owner died), 'callback' (queued to another thread,
   * run), 'driver' (operations submitted, cancelled, ended), 'thread' (workers reaped), 'sanitizer'
   * (use-after-free caught), 'release' (dma_fence_destroy). Default: all but 'release', which
   * doubles the cost of a fence's life (a second clock read); `'all'` records everything.
   */
  categories?: readonly TraceCategory[] | 'all';
}

let opsNamer: (id: number) => string | undefined = () => undefined;
/** @internal The fence layer's ops registry, for the names of context tracks. */
export function setOpsNamer(fn: (id: number) => string | undefined): void {
  opsNamer = fn;
}

type Describer = (arena: Arena, reason?: string) => ArenaDump;
let describer: Describer | null = null;
/** @internal The walker behind {@link Arena.describe} (it reads every layer, so it registers from above). */
export function setDescriber(fn: Describer): void {
  describer = fn;
}

/** Runs the registered dump walker. Throws EINVAL when the package entry was not loaded. */
export function describeArena(arena: Arena, reason?: string): ArenaDump {
  if (describer === null) throw Errors.invalid('arena.describe() needs the fencelab package entry loaded (import from "fencelab")');
  return describer(arena, reason);
}

/** The recorder of one arena, seen from the calling thread. Get it as `arena.trace`. */
export class Tracer {
  /** The arena it records (this thread's view). */
  readonly arena: Arena;

  /** Not public (one built by hand would skip its factory's checks): use `arena.trace`. */
  private constructor(arena: Arena) {
    this.arena = arena;
  }

  /** @internal The recorder behind `arena.trace`. */
  static make(arena: Arena): Tracer {
    return new Tracer(arena);
  }

  /**
   * Starts a session: from now on every attached thread records the chosen categories into its
   * own ring (allocated in the arena at its first event). Events of an earlier session are dropped
   * and the rings of threads that are gone are freed.
   * Threads: any attached thread. Locking: none (one flag word is written last).
   * Returns nothing. Throws EINVAL for unknown categories or a ring size out of 16..MAX_RING_EVENTS.
   */
  start(options: TraceOptions = {}): void {
    options = optionsArg(options, 'trace.start', ['categories', 'eventsPerThread']);
    let bits = L.TC_DEFAULT;
    if (options.categories === 'all') bits = L.TC_ALL;
    else if (options.categories !== undefined) {
      if (!isArrayArg(options.categories) || options.categories.length === 0)
        throw Errors.invalid(`trace categories must be 'all' or a non-empty array of ${TRACE_CATEGORIES.join(', ')}`);
      bits = 0;
      for (const c of options.categories) {
        const bit = CATEGORY_BITS[c as TraceCategory];
        if (bit === undefined) throw Errors.invalid(`unknown trace category ${describeValue(c)} (one of ${TRACE_CATEGORIES.join(', ')})`);
        bits |= bit;
      }
    }
    startTrace(this.arena, bits, options.eventsPerThread === undefined ? DEFAULT_RING_EVENTS : options.eventsPerThread);
  }

  /** Stops recording in every thread; the events stay readable until the next start. Threads: any. */
  stop(): void {
    stopTrace(this.arena);
  }

  /** True while a session records. */
  get active(): boolean {
    return traceFlags(this.arena) !== 0;
  }

  /** The categories being recorded (empty when off). */
  get categories(): TraceCategory[] {
    const bits = traceFlags(this.arena);
    return TRACE_CATEGORIES.filter((c) => (bits & CATEGORY_BITS[c]) !== 0);
  }

  /**
   * Names the calling thread ("exporter 1"): its trace track and its lines in arena dumps carry
   * the name. UTF-8, cut to 28 bytes. Threads: the thread being named. Throws EINVAL for an
   * empty or non-string name.
   */
  nameThread(name: string): void {
    nameThread(this.arena, name);
  }

  /** The calling thread's name ("main" or "thread <id>" unless it named itself). */
  get threadName(): string {
    return ownThreadName(this.arena);
  }

  /**
   * The current session's events, copied out of every thread's ring (also while recording: events
   * overwritten during the copy are counted as lost). Threads: any attached thread.
   */
  snapshot(): TraceSnapshot {
    return readTrace(this.arena);
  }

  /**
   * The current session as a Chrome trace-event object: `JSON.stringify` it to a file that
   * Perfetto (ui.perfetto.dev) or chrome://tracing opens. `placement` puts it beside other
   * sessions in one trace (see mergeChromeTraces). Threads: any attached thread. Throws EINVAL for
   * a `placement` that is not an object of known keys (`origin`, `pid`: finite numbers; `label`).
   */
  export(placement: Placement = {}): ChromeTrace {
    placementArg(placement, 'trace.export');
    return toChromeTrace(readTrace(this.arena), { opsName: (id) => opsNamer(id) }, placement);
  }

  /**
   * Stops recording and frees the rings of threads that are gone; live threads keep theirs for
   * the next session. Threads: any attached thread.
   */
  dispose(): void {
    disposeTrace(this.arena);
  }
}
