/**
 * Calls into a fence's ops on behalf of the {@link Fence} view (`f`, payload word `fw`): the names,
 * the kernel-style one-line description and the deadline hint. Kept apart from the ops registry
 * (ops.ts): these read the fence through the handle-level core (signaled flag, seqno), and the core
 * needs the registry when it initialises a fence, so one file holding both would import the core
 * that imports it.
 */
import { isSignaledFlag, seqnoOf } from './core.js';
import type { Fence } from './fence.js';
import { F_CONTEXT, F_FLAGS, F_OPS, FLAG_OPS_DEADLINE, FLAG_SIGNALED } from './layout.js';
import { opsById } from './ops.js';

/** The ops' driver name; `"detached-driver"` once signaled (ops are detached on signal). */
export function driverNameOf(f: Fence, fw: number): string {
  if (isSignaledFlag(f.arena.i32, fw)) return 'detached-driver';
  return opsById(f.arena.i32[fw + F_OPS]).table.getDriverName(f);
}

/** The ops' timeline name; `"signaled-timeline"` once signaled. */
export function timelineNameOf(f: Fence, fw: number): string {
  if (isSignaledFlag(f.arena.i32, fw)) return 'signaled-timeline';
  return opsById(f.arena.i32[fw + F_OPS]).table.getTimelineName(f);
}

/**
 * One line in the kernel's shape (kernel dma_fence_describe):
 * `<context>:<seqno> <timeline> <driver> [un]signalled`, the names empty once the ops are
 * detached (signaled). Throws EINVAL when this thread lacks the ops of an unsignaled fence.
 */
export function describeFence(f: Fence, fw: number): string {
  const i32 = f.arena.i32;
  const signaled = isSignaledFlag(i32, fw);
  let timeline = '';
  let driver = '';
  if (!signaled) {
    const t = opsById(i32[fw + F_OPS]).table;
    timeline = t.getTimelineName(f);
    driver = t.getDriverName(f);
  }
  return `${i32[fw + F_CONTEXT]}:${seqnoOf(i32, fw)} ${timeline} ${driver} ${signaled ? '' : 'un'}signalled`;
}

/**
 * Passes deadline hint `ns` to ops.setDeadline (kernel dma_fence_set_deadline), for an unsignaled
 * fence whose ops have one (FLAG_OPS_DEADLINE). Throws EINVAL when this thread lacks those ops.
 */
export function setDeadlineOf(f: Fence, fw: number, ns: bigint): void {
  const flags = Atomics.load(f.arena.i32, fw + F_FLAGS);
  if (flags & FLAG_SIGNALED || !(flags & FLAG_OPS_DEADLINE)) return;
  opsById(f.arena.i32[fw + F_OPS]).table.setDeadline?.(f, ns);
}
