/**
 * Who signals a fence, and what happens when that thread dies.
 *
 * Every fence has a thread responsible for signaling it: its creator, until another thread takes
 * the job over with {@link adoptSignalingAt} (Fence.adoptSignaling: a worker that was handed the
 * fence, a piscina task's worker when it starts the task). Containers (arrays, chains) and sw_sync
 * points have none: their children or their timeline signal them. The responsible thread is kept
 * in the fence's timestamp words, which mean nothing until the fence is signaled (the signal
 * overwrites them, before it sets SIGNALED): `[slot + 1, slot serial]`, or `[0, 0]` for none. So
 * knowing it costs the hot path two plain writes and no memory.
 *
 * When the responsible thread dies, the SIGNALERS reap stage finds its unsignaled fences with a
 * heap walk and signals them with -EOWNERDEAD: their waiters wake, their callbacks run (other
 * threads' are delivered to their inboxes as usual), and nobody is left hanging. The stage runs
 * after the ledger and the driver's operations, whose recovery signals what it knows with its
 * own errors (a job or an operation ends with -ENODEV).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import { blockTypeAt } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errno, NO_ERROR, rethrowFirst } from '../errors.js';
import { runDetached } from './inbox.js';
import { fenceTryGet, markSignaledLocked, nowNs } from './core.js';
import { fenceLock, fenceUnlock } from './lock.js';
import { takeHeldAtDeath } from './inlinereap.js';
import { takeRobustHeldAtDeath } from '../locks/deadreap.js';
import { putFence, undoStaleGet } from './release.js';

const { F_FLAGS, F_ERROR, F_LOCK, F_TIMESTAMP, FLAG_INITIALIZED, FLAG_INLINE_LOCK, FLAG_SIGNALED } = L;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

/** The error a fence gets when the thread responsible for signaling it dies. */
export const SIGNALER_DIED = Errno.EOWNERDEAD;

/**
 * Makes the calling thread the one responsible for signaling fence `fw` (unsignaled). Locking:
 * takes the fence lock. Returns false when the fence is already signaled (nothing to adopt).
 */
export function adoptSignalingAt(arena: Arena, fw: number): boolean {
  const i32 = arena.i32;
  fenceLock(arena, fw);
  try {
    if (i32[fw + F_FLAGS] & FLAG_SIGNALED) return false;
    i32[fw + F_TIMESTAMP] = arena.slot + 1;
    i32[fw + F_TIMESTAMP + 1] = i32[arena.slotBase + A.T_SERIAL];
    return true;
  } finally {
    fenceUnlock(arena, fw);
  }
}

/**
 * Leaves fence `fw` (just initialised, not yet shared) without a responsible thread: something
 * other than a thread signals it (its children, its timeline). Plain writes.
 */
export function clearSignalerAt(i32: Int32Array, fw: number): void {
  i32[fw + F_TIMESTAMP] = 0;
  i32[fw + F_TIMESTAMP + 1] = 0;
}

/**
 * The thread slot responsible for signaling fence `fw`, or -1 (none, or signaled). Racy: a
 * snapshot for diagnostics and tests.
 */
export function signalerOf(i32: Int32Array, fw: number): number {
  if (Atomics.load(i32, fw + F_FLAGS) & FLAG_SIGNALED) return -1;
  return i32[fw + F_TIMESTAMP] - 1;
}

/**
 * Reap hook: signals with -EOWNERDEAD every unsignaled fence the dead thread of `slot` was
 * responsible for. The walk only collects (the signals allocate and free); each fence is then
 * taken with a reference of ours, checked again under its lock, signaled and put.
 */
function signalOrphans(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: the thread is alive and can still signal
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const who = slot + 1;
  const serial = i32[b + A.T_SERIAL];
  const found: number[] = [];
  // Killed inside a signal: the timestamp is written before the SIGNALED flag's Atomics.or (a
  // terminate() lands at that Atomics call, before it runs), so a thread terminated between the
  // two left the fence unsignaled with its signaler words overwritten. It held the fence's lock —
  // an inline one (inlinereap.ts) or a borrowed, robust-listed word (lockword.ts) — so the fences
  // whose lock it held are looked at again below, whatever their words say.
  const held = takeHeldAtDeath(slot);
  const heldWords = new Set(takeRobustHeldAtDeath(slot));
  arena.walk((hw, _size, state, type) => {
    const fw = hw + BLOCK_HEADER_WORDS;
    if (state !== A.STATE_LIVE || type !== A.BlockType.FENCE) return;
    const flags = i32[fw + F_FLAGS];
    if ((flags & (FLAG_INITIALIZED | FLAG_SIGNALED)) !== FLAG_INITIALIZED) return;
    if (i32[fw + F_TIMESTAMP] === who && i32[fw + F_TIMESTAMP + 1] === serial) found.push(fw, i32[hw + B_GEN] & GEN_MASK, who, serial);
    else if (heldWords.size !== 0 && !(flags & FLAG_INLINE_LOCK) && heldWords.has(i32[fw + F_LOCK])) held.push(fw, i32[hw + B_GEN] & GEN_MASK);
  });
  // If the words of a fence whose lock it held name no live thread, nobody is left to signal it,
  // and it is signaled like the others (the words it shows then are what is checked).
  for (let k = 0; k < held.length; k += 2) {
    const fw = held[k];
    const flags = i32[fw + F_FLAGS];
    if (!arena.isLive(fw - BLOCK_HEADER_WORDS, held[k + 1]) || (flags & (FLAG_INITIALIZED | FLAG_SIGNALED)) !== FLAG_INITIALIZED) continue;
    const w0 = i32[fw + F_TIMESTAMP];
    const w1 = i32[fw + F_TIMESTAMP + 1];
    if ((w0 === who && w1 === serial) || (w0 === 0 && w1 === 0) || namesLiveThread(arena, w0, w1)) continue;
    found.push(fw, held[k + 1], w0, w1);
  }
  let first: unknown = NO_ERROR;
  for (let k = 0; k < found.length; k += 4) {
    try {
      signalOrphan(arena, found[k], found[k + 1], found[k + 2], found[k + 3]);
    } catch (e) {
      if (first === NO_ERROR) first = e;
    }
  }
  rethrowFirst(first);
}

/** True when signaler words `[w0, w1]` name a live thread slot (slot + 1, its current serial). */
function namesLiveThread(arena: Arena, w0: number, w1: number): boolean {
  if (!Number.isInteger(w0) || w0 < 1 || w0 > arena.maxThreads) return false;
  const b = arena.slotWord(w0 - 1);
  return arena.i32[b + A.T_STATE] === A.SLOT_LIVE && arena.i32[b + A.T_SERIAL] === w1;
}

/**
 * Signals fence (`fw`, `gen`) with SIGNALER_DIED unless it was signaled, freed or adopted since the
 * walk (its signaler words no longer `[who, serial]`, the words the walk saw).
 */
function signalOrphan(arena: Arena, fw: number, gen: number, who: number, serial: number): void {
  const i32 = arena.i32;
  const hw = fw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen) || !fenceTryGet(i32, fw)) return;
  // The block may have been released and reused between the check and the get: then the get
  // went to a new fence (or another block's word) and is undone.
  if (!arena.isLive(hw, gen) || blockTypeAt(i32, hw) !== A.BlockType.FENCE) return undoStaleGet(arena, fw);
  let head = 0;
  try {
    fenceLock(arena, fw);
    try {
      // Under the lock: not signaled, and nobody adopted it since the walk.
      if (!(i32[fw + F_FLAGS] & FLAG_SIGNALED) && i32[fw + F_TIMESTAMP] === who && i32[fw + F_TIMESTAMP + 1] === serial) {
        i32[fw + F_ERROR] = SIGNALER_DIED;
        head = markSignaledLocked(arena, fw, nowNs());
      }
    } finally {
      fenceUnlock(arena, fw);
    }
    if (head > 0) runDetached(arena, head);
  } finally {
    putFence(arena, fw);
  }
}
onReap(ReapStage.SIGNALERS, signalOrphans);
