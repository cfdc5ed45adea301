/**
 * Argument checks of the runtime's free functions (dispatcher, ledger, pool glue): a wrong value is
 * a typed FenceError naming the argument, thrown before anything is read through it or changed.
 */
import type { Arena } from '../arena/arena.js';
import { Errors, describeValue, isInstance } from '../errors.js';
import { Fence } from '../fence/fence.js';

/**
 * `fence` as a live Fence (an argument of a public runtime entry), else EINVAL naming `where` and
 * `what`, or EBADF once the fence was released. Threads: any. Changes nothing.
 */
export function fenceArgOf(fence: unknown, where: string, what = 'fence'): Fence {
  if (!isInstance(fence, Fence)) throw Errors.invalid(`${where}: ${what} must be a Fence, got ${describeValue(fence)}`);
  fence.refcount; // validates the view (EBADF on a released fence)
  return fence;
}

/** Throws EINVAL unless `f` is a Fence of `arena` (`what` names it). Threads: any. Changes nothing. */
export function checkSameArena(arena: Arena, f: Fence, what: string): void {
  if (!isInstance(f, Fence)) throw Errors.invalid(`${what} must be a Fence, got ${describeValue(f)}`);
  if (f.arena.buffer !== arena.buffer) throw Errors.invalid(`${what} belongs to another arena`);
}
