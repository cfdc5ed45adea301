/**
 * Fence ops: functions cannot cross threads, so every thread registers the same ops table under the
 * same name and the fence stores the name's 32-bit hash. A thread that meets an ops id it never
 * registered gets a clear EINVAL, not a wrong driver.
 */
import { Errors } from '../errors.js';
import { isSignaledFlag, seqnoOf } from './core.js';
import type { Fence } from './fence.js';
import { F_OPS } from './layout.js';

/** What a driver supplies; the names are mandatory, the rest optional (kernel `dma_fence_ops`). */
export interface FenceOpsTable {
  getDriverName(fence: Fence): string;
  getTimelineName(fence: Fence): string;
  /** Called once, under the fence lock, when someone first needs the fence to signal. false → signal now. */
  enableSignaling?(fence: Fence): boolean;
  /** Polled by isSignaled()/status(); true → the fence gets signaled. */
  signaled?(fence: Fence): boolean;
  /** Called when the last reference goes, before the block is freed (release driver resources). */
  release?(fence: Fence): void;
  /** A waiter would like the fence signaled by `ns` (monotonic clock). */
  setDeadline?(fence: Fence, ns: bigint): void;
}

/** A registered ops table: what `Fence.create` takes as `ops`. */
export interface FenceOps {
  readonly id: number;
  readonly name: string;
  readonly table: FenceOpsTable;
}

const registry = new Map<number, FenceOps>();

/** FNV-1a of the name, never 0 (0 means "no ops"). */
function opsId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0 || 1;
}

/**
 * Registers an ops table under `name` in the calling thread and returns it. Registering the same
 * name again replaces the table (each thread registers its own copy). Throws EINVAL for an empty
 * name, a missing mandatory function, or a name whose id collides with another registered name.
 */
export function defineFenceOps(name: string, table: FenceOpsTable): FenceOps {
  if (typeof name !== 'string' || name.length === 0) throw Errors.invalid('fence ops need a non-empty name');
  if (table === null || typeof table !== 'object') throw Errors.invalid(`fence ops ${name}: table must be an object`);
  for (const fn of ['getDriverName', 'getTimelineName'] as const)
    if (typeof table[fn] !== 'function') throw Errors.invalid(`fence ops ${name}: ${fn} is mandatory`);
  for (const fn of ['enableSignaling', 'signaled', 'release', 'setDeadline'] as const)
    if (table[fn] !== undefined && typeof table[fn] !== 'function') throw Errors.invalid(`fence ops ${name}: ${fn} must be a function`);
  const id = opsId(name);
  const known = registry.get(id);
  if (known && known.name !== name) throw Errors.invalid(`fence ops ${name} collides with ${known.name}; pick another name`);
  const ops: FenceOps = Object.freeze({ id, name, table: Object.freeze({ ...table }) });
  registry.set(id, ops);
  return ops;
}

/** The ops registered in this thread under `id`, or a clear EINVAL. */
export function opsById(id: number): FenceOps {
  const ops = registry.get(id);
  if (!ops) throw Errors.invalid(`fence ops id ${id >>> 0} is not registered in this thread (call defineFenceOps with its name here too)`);
  return ops;
}

/** Looks up without throwing. */
export function findOps(id: number): FenceOps | undefined {
  return registry.get(id);
}

/** The software ops a fence gets when `Fence.create` is given none. */
export const defaultOps = defineFenceOps('fencelab', {
  getDriverName: () => 'fencelab',
  getTimelineName: () => 'unbound',
});

/** Ops of the stub fences (kernel `dma_fence_stub_ops`). */
export const stubOps = defineFenceOps('fencelab:stub', {
  getDriverName: () => 'stub',
  getTimelineName: () => 'stub',
});

/* ───────────── calls into a fence's ops (view `f`, payload word `fw`) ───────────── */

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

/** Kernel dma_fence_describe: `<driver> <timeline> seq <n> [un]signalled`. */
export function describeFence(f: Fence, fw: number): string {
  const signaled = isSignaledFlag(f.arena.i32, fw);
  const names = signaled ? 'detached-driver signaled-timeline' : `${driverNameOf(f, fw)} ${timelineNameOf(f, fw)}`;
  return `${names} seq ${seqnoOf(f.arena.i32, fw)} ${signaled ? '' : 'un'}signalled`;
}

/** Passes deadline hint `ns` to ops.setDeadline, for an unsignaled fence only. */
export function setDeadlineOf(f: Fence, fw: number, ns: bigint): void {
  if (isSignaledFlag(f.arena.i32, fw)) return;
  findOps(f.arena.i32[fw + F_OPS])?.table.setDeadline?.(f, ns);
}
