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
import { ChromeExport } from './chromeexport.js';
import type { TraceSnapshot } from './snapshot.js';

export { EVENT_NAMES } from './chromeparts.js';

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
/**
 * Converts a snapshot to a Chrome trace. Events whose partner was lost (overwritten in a full
 * ring) are left out; spans still open when the session ended (a wait that never returned, a
 * fence never signaled) are closed at its end and marked `open: true`.
 */
export function toChromeTrace(snap: TraceSnapshot, names: ExportNames = {}, placement: Placement = {}): ChromeTrace {
  return new ChromeExport(snap, names, placement).run();
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
