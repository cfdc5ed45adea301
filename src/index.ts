/** fencelab: Linux DMA fences for Node.js worker threads. Public API (DESIGN.md §8). */
export { Arena, onReap } from './arena/arena.js';
export type { ArenaOptions, ArenaStats, CheckReport, LeakReport } from './arena/arena.js';
export { BlockType, LOCK_KINDS } from './arena/layout.js';
export type { LockKind } from './arena/layout.js';
export { Errno, FenceError, UseAfterFreeError, errnoName } from './errors.js';
export type { UseAfterFreeReport } from './errors.js';
export { SpinLock } from './locks/spinlock.js';
export { Fence } from './fence/fence.js';
export type { FenceCallback, FenceInit } from './fence/fence.js';
export { defineFenceOps } from './fence/ops.js';
export type { FenceOps, FenceOpsTable } from './fence/ops.js';
export { drainInbox } from './fence/callbacks.js';
