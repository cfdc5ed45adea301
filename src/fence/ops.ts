/**
 * Fence ops: functions cannot cross threads, so every thread registers the same ops table under the
 * same name and the fence stores the name's 32-bit hash. A thread that meets an ops id it never
 * registered gets a clear EINVAL, not a wrong driver.
 */
import { Errors, optionsArg } from '../errors.js';
import type { Fence } from './fence.js';
import { FLAG_OPS_DEADLINE, FLAG_OPS_ENABLE, FLAG_OPS_RELEASE } from './layout.js';

/** What a driver supplies; the names are mandatory, the rest optional (kernel `dma_fence_ops`). */
export interface FenceOpsTable {
  /** The driver's name for `fence` (kernel get_driver_name); asked only while the fence is pending. */
  getDriverName(fence: Fence): string;
  /** The timeline's name for `fence` (kernel get_timeline_name); asked only while the fence is pending. */
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
  /** What a fence stores: a 32-bit hash of `name`, the same in every thread that registers the name. */
  readonly id: number;
  /** The name it was registered under. */
  readonly name: string;
  /** The calling thread's table for that name. */
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
 * name, a missing mandatory function, a key no ops table has, or a name whose id collides with
 * another registered name.
 */
export function defineFenceOps(name: string, table: FenceOpsTable): FenceOps {
  if (typeof name !== 'string' || name.length === 0) throw Errors.invalid('fence ops need a non-empty name');
  if (table === null || typeof table !== 'object') throw Errors.invalid(`fence ops ${name}: table must be an object`);
  // A misspelled hook (`relase`) would otherwise never run, silently.
  optionsArg(table, `fence ops ${name}`, ['getDriverName', 'getTimelineName', 'enableSignaling', 'signaled', 'release', 'setDeadline']);
  for (const fn of ['getDriverName', 'getTimelineName'] as const)
    if (typeof table[fn] !== 'function') throw Errors.invalid(`fence ops ${name}: ${fn} is mandatory`);
  for (const fn of ['enableSignaling', 'signaled', 'release', 'setDeadline'] as const)
    if (table[fn] !== undefined && typeof table[fn] !== 'function') throw Errors.invalid(`fence ops ${name}: ${fn} must be a function`);
  const id = opsId(name);
  const known = registry.get(id);
  if (known && known.name !== name) throw Errors.invalid(`fence ops ${name} collides with ${known.name}; pick another name`);
  const ops: FenceOps = Object.freeze({ id, name, table: Object.freeze({ ...table }) });
  registry.set(id, ops);
  flagsById.set(id, (table.enableSignaling ? FLAG_OPS_ENABLE : 0) | (table.release ? FLAG_OPS_RELEASE : 0) | (table.setDeadline ? FLAG_OPS_DEADLINE : 0));
  return ops;
}

const flagsById = new Map<number, number>();

/**
 * The FLAG_OPS_* bits of the ops registered here under `id` (0 when unknown): which optional ops a
 * fence created with them has, so that a thread without the table can tell whether one must run.
 */
export function opsFlagsOf(id: number): number {
  return flagsById.get(id) ?? 0;
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

const resumable = new Set<number>();

/**
 * @internal Declares that the release of `ops` may be called again on a fence whose release was
 * cut off (a thread terminated inside it): it records its progress in the fence's own block,
 * clearing each word it has dropped in the run of the drop, so a second call finishes exactly what
 * the first had not done. The reaper (src/fence/release.ts) calls such a release again instead of
 * skipping it. The containers' releases are; a driver's release, which may not be, is not.
 */
export function markReleaseResumable(ops: FenceOps): void {
  resumable.add(ops.id);
}

/** Whether the ops registered under `id` were marked with {@link markReleaseResumable}. */
export function releaseResumes(id: number): boolean {
  return resumable.has(id);
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

/** The refusal of an op this thread cannot run: the fence's ops (`id`) were never registered here. */
export function opsMissing(id: number, what: string): Error {
  return Errors.invalid(
    `${what} of a fence whose ops (id ${id >>> 0}) are not registered in this thread: its ops would not run here; ` +
      'call defineFenceOps with the same name in every thread that touches such fences',
  );
}
