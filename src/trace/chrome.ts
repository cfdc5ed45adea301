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
import { describeValue, Errors, optionsArg } from '../errors.js';
import { ChromeExport } from './chromeexport.js';
import { checkShape, type Shape } from './shape.js';
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
const EVENT_SHAPE: Shape = { ts: 'number', kind: 'integer', bits: 'integer', a: 'integer', b: 'integer', c: 'integer', d: 'integer', e: 'integer' };
/** What the exporter reads of a snapshot, field by field. */
const SNAPSHOT_SHAPE: Shape = {
  session: 'number', recording: 'boolean', startMs: 'number', endMs: 'number', slotNames: { '*': 'string' },
  threads: [{ slot: 'integer', serial: 'number', threadId: 'number', name: 'string', alive: 'boolean', recorded: 'number', lost: 'number', events: [EVENT_SHAPE] }],
};
/** What {@link mergeChromeTraces} and the timeline view read of a Chrome trace. */
export const CHROME_TRACE_SHAPE: Shape = {
  traceEvents: [{ name: 'string', ph: 'string', pid: 'number', tid: 'number', 'ts?': 'number', 'dur?': 'number', 'cat?': 'string', 'id?': 'number', 'args?': {} }],
  otherData: { 'eventsLost?': 'number' },
};

/**
 * `placement` checked: an object of known keys (`undefined` → `{}`), `origin` and `pid` finite
 * numbers, `label` a string. Any thread. Throws EINVAL naming `where`.
 */
export function placementArg(placement: Placement | undefined, where: string): Placement {
  const p = optionsArg(placement, where, ['origin', 'pid', 'label']);
  for (const k of ['origin', 'pid'] as const)
    if (p[k] !== undefined && !Number.isFinite(p[k])) throw Errors.invalid(`${where}: ${k} must be a finite number, got ${describeValue(p[k])}`);
  checkShape(p, { 'label?': 'string' }, `${where}: placement`);
  return p;
}

/**
 * Converts a snapshot to a Chrome trace. Events whose partner was lost (overwritten in a full
 * ring) are left out; spans still open when the session ended (a wait that never returned, a
 * fence never signaled) are closed at its end and marked `open: true`. Any thread. Throws EINVAL
 * naming the argument and the field when `snap`, `names` or `placement` has the wrong shape.
 */
export function toChromeTrace(snap: TraceSnapshot, names: ExportNames = {}, placement: Placement = {}): ChromeTrace {
  checkShape(snap, SNAPSHOT_SHAPE, 'snapshot');
  checkShape(optionsArg(names, 'toChromeTrace: names', ['opsName']), { 'opsName?': 'function' }, 'names');
  return new ChromeExport(snap, names, placementArg(placement, 'toChromeTrace')).run();
}

/**
 * One trace from several (each made with its own `placement.pid`, two apart): events side by
 * side, flow ids renumbered so that they stay unique, each part's `otherData` kept under `parts`.
 * Any thread. Throws EINVAL naming the part and field when `parts` is not an array of Chrome traces.
 */
export function mergeChromeTraces(parts: ChromeTrace[]): ChromeTrace {
  checkShape(parts, [CHROME_TRACE_SHAPE], 'parts');
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
