/**
 * Parked references: a fence reference owned by a word of shared memory (a hand-off slot between
 * threads) instead of by a thread. The word holds the fence's handle exactly while the reference
 * exists — both change in one run with the refcount's Atomics op (see src/fence/drop.ts) — so a thread
 * terminated at any point leaves either the reference and its handle in the word, or neither:
 * whoever recovers after it drops what the word still names, and nothing is put twice or leaked.
 * Handles are safe integers wider than 32 bits, hence a Float64Array word.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import * as FL from '../fence/layout.js';
import { Errors, describeValue, isInstance } from '../errors.js';
import { dropRef, pushRelease } from '../fence/drop.js';
import { Fence } from '../fence/fence.js';
import { putRefusedOrLocked, releaseFenceAt } from '../fence/release.js';
import { fenceArgOf } from './args.js';

function checkCell(cells: Float64Array, index: number): void {
  if (!isInstance(cells, Float64Array)) throw Errors.invalid(`parked references live in a Float64Array, got ${describeValue(cells)}`);
  if (!Number.isInteger(index) || index < 0 || index >= cells.length)
    throw Errors.invalid(`cell index ${describeValue(index)} not in 0..${cells.length - 1}`);
}

/**
 * Takes a new reference on `fence` and parks it in `cells[index]` (the word receives the fence's
 * handle in the same run as the refcount increment).
 *
 * Locking: none. The caller's own protocol makes it the only writer of the word at that moment.
 * Threads: any attached thread; the reference belongs to the word, not to the calling thread (a
 * reaper does not drop it: drop it with {@link dropParkedRef}).
 * Returns nothing. Throws EINVAL (not a Fence, not a Float64Array, index out of range, the word is
 * not 0), EBADF (a released fence; nothing is parked).
 */
export function parkRef(fence: Fence, cells: Float64Array, index: number): void {
  fenceArgOf(fence, 'parkRef'); // EBADF on a released fence
  checkCell(cells, index);
  if (cells[index] !== 0) throw Errors.invalid(`cell ${index} already holds a parked reference (${cells[index]})`);
  const handle = fence.handle;
  const i32 = fence.arena.i32;
  const rc = fence.fw + FL.F_REFCOUNT;
  // The increment, then the handle, with no call between: one run for terminate().
  const old = Atomics.add(i32, rc, 1);
  cells[index] = handle;
  if (old <= 0) {
    cells[index] = 0;
    Atomics.sub(i32, rc, 1);
    throw Errors.badHandle('fence', handle, `parkRef on a fence with refcount ${old}`);
  }
}

/**
 * Drops the reference parked in `cells[index]` and clears the word in the same run as the
 * refcount decrement; the last reference releases the fence (as {@link Fence.put}).
 *
 * Locking: none of its own; the holder of the fence's lock may drop a reference that is not the
 * last (the release would take the lock). The caller's protocol makes it the only user of the word
 * at that moment.
 * Threads: any attached thread — the one the hand-off protocol names, or one recovering after a
 * dead thread.
 * Returns true when a reference was dropped, false when the word was 0. Throws EINVAL (not an Arena, bad cell;
 * ops with a release not registered in this thread), EBADF (the word names a released fence: the
 * word was not written by {@link parkRef}), EDEADLK (the last reference, by the holder of the
 * fence's lock); nothing changes on a throw.
 */
export function dropParkedRef(arena: Arena, cells: Float64Array, index: number): boolean {
  arenaArg(arena, 'dropParkedRef');
  checkCell(cells, index);
  const handle = cells[index];
  if (handle === 0) return false;
  const fw = Fence.fromHandle(arena, handle).fw;
  if (putRefusedOrLocked(arena, fw, 0, 0)) {
    cells[index] = 0; // right after the compare-exchange's return: its run
    return true;
  }
  // The same protocol as every drop (src/fence/drop.ts): the intent record, then the decrement
  // with its records, then the word cleared right after the return (a plain write, no call between).
  const d = pushRelease(arena, fw);
  const old = dropRef(arena, fw, d, 0, 0);
  cells[index] = 0;
  if (old > 1) return true;
  if (old < 1) {
    Atomics.add(arena.i32, fw + FL.F_REFCOUNT, 1);
    cells[index] = handle;
    throw Errors.badHandle('fence', handle, `dropParkedRef on a fence with refcount ${old}`);
  }
  releaseFenceAt(arena, fw, d);
  return true;
}
