/**
 * fencelab: Linux DMA fences for Node.js worker threads. The package's one entry point: every
 * public name is exported here (docs/kernel-mapping.md maps each to the kernel's).
 * @packageDocumentation
 */
export { Arena } from './arena/arena.js';
export type { ArenaOptions } from './arena/arena.js';
export type { ArenaStats, CheckReport, LeakReport } from './arena/check.js';
export { BlockType } from './arena/layout.js';
export { LOCK_KINDS } from './locks/layout.js';
export type { LockKind } from './locks/layout.js';
export { Errno, FenceError, LockOrderError, UseAfterFreeError, errnoName } from './errors.js';
export type { LockOrderReport, LockOrderStep, UseAfterFreeReport } from './errors.js';
export { lockOrderCount, lockOrderReports } from './locks/lockdep.js';
export { SpinLock } from './locks/spinlock.js';
export { Fence } from './fence/fence.js';
export { FenceSlot } from './fence/slot.js';
export type { FenceCallback, FenceInit, ShareOptions } from './fence/fence.js';
export type { WaitOptions } from './fence/wait.js';
export { defineFenceOps } from './fence/ops.js';
export type { FenceOps, FenceOpsTable } from './fence/ops.js';
export { drainInbox } from './fence/inbox.js';
export { SyncFile } from './sync/syncfile.js';
export type { SyncFileInfo, SyncFenceInfo } from './sync/syncfile.js';
export { SwTimeline } from './sync/timeline.js';
export { Dispatcher, startDispatcher, stopDispatcher, dispatcherOf, setAutoDispatch, drain, waitInbox, pendingCallbacks } from './runtime/dispatcher.js';
export type { DispatchErrorHandler } from './runtime/dispatcher.js';
export { trackRef, putTracked, importFd, ledgerSize, ledgerCompact } from './runtime/ledger.js';
export { parkRef, dropParkedRef } from './runtime/parked.js';
export { runWithFence, fenceTask, watchPool, signalError, createFencePool, FencePool, taskResult } from './runtime/piscina.js';
export type { FenceTaskMessage, FenceTaskContext, PoolLike, PiscinaPool, FencePoolOptions, RunOptions } from './runtime/piscina.js';
export { runGraph } from './runtime/graph.js';
export type { GraphNode, GraphOutcome, GraphRun } from './runtime/graph.js';
export { Driver, Operation, DriverCmd } from './driver/driver.js';
export type { LockMode, DriverCommand, DriverCounters, DriverOptions, SubmitOptions } from './driver/driver.js';
export { FenceArray, FenceChain, unwrapFences, mergeFences, dedupArray, isContainer, matchContext } from './containers/index.js';
export type { FenceArrayOptions } from './containers/index.js';
export {
  Tracer, TRACE_CATEGORIES, DEFAULT_TRACE_CATEGORIES, EVENT_NAMES, toChromeTrace, mergeChromeTraces, analyzeHang, assertDump, renderDump,
  renderTimelinePage, renderTimelineSection, TIMELINE_STYLE,
} from './trace/index.js';
export type {
  TraceCategory, TraceOptions, RawEvent, ThreadEvents, TraceSnapshot, ChromeEvent, ChromeTrace, ExportNames, Placement, TimelineOptions,
  ArenaDump, DumpFence, DumpFd, DumpLock, DumpOperation, DumpThread, DumpTimeline,
} from './trace/index.js';
export { FenceMemory } from './containers/index.js';
