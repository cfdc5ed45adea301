/**
 * Observability: the trace recorder (`arena.trace`), its Chrome trace-event export, the arena
 * dump (`arena.describe()`) with its text rendering and hang analysis, and the offline timeline
 * page. Loading this module connects the recorder to the layers above it (ops names, the walker).
 */
import { findOps } from '../fence/ops.js';
import { describe } from './describe.js';
import { setDescriber, setOpsNamer } from './tracer.js';

setDescriber(describe);
setOpsNamer((id) => findOps(id)?.name);

export { Tracer, TRACE_CATEGORIES, DEFAULT_TRACE_CATEGORIES } from './tracer.js';
export type { TraceCategory, TraceOptions } from './tracer.js';
export type { RawEvent, ThreadEvents, TraceSnapshot } from './snapshot.js';
export { EVENT_NAMES, mergeChromeTraces, toChromeTrace } from './chrome.js';
export type { ChromeEvent, ChromeTrace, ExportNames, Placement } from './chrome.js';
export { renderTimelinePage, renderTimelineSection, TIMELINE_STYLE } from './viewer.js';
export type { TimelineOptions } from './viewer.js';
export { analyzeHang, assertDump, renderDump } from './dump.js';
export type { ArenaDump, DumpFence, DumpFd, DumpLock, DumpOperation, DumpThread, DumpTimeline } from './dump.js';
