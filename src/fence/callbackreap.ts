/**
 * Finishing what a dead thread left of fence callbacks, as reap hooks registered at load (stages
 * CALLBACKS and SIGNALS): the nodes it was freeing, and the signals it was inside of.
 */
import type { Arena } from '../arena/arena.js';
import { onDetach, onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, NO_ERROR, rethrowFirst } from '../errors.js';
import { isSignaledFlag } from './core.js';
import { fenceLock, fenceUnlock } from './lock.js';
import { sharedHandlers, sharedReapers, sharedTarget } from './callbacks.js';
import { deliverRemote, pushQueued, runDetached, runWake } from './inbox.js';

const { CB_FENCE, CB_OWNER, CB_TOKEN, CB_STATE, CB_KIND } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * A thread killed between marking a node FREEING and freeing it (worker.terminate() lands at the
 * freeBlock call) leaves the node unreachable. A node is marked FREEING only by its owner (a
 * thread removing another's node takes it over first, see unlinkCallbackLocked), and the owner is
 * dead when its slot is reaped, so freeing those nodes here cannot race anyone.
 * The walk skips blocks being carved concurrently (it stops at a header not yet written).
 */
function freeOrphanedNodes(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: a live thread has no half-freed node
  const i32 = arena.i32;
  const orphans: number[] = [];
  arena.walk((hw, _size, state, type) => {
    const nw = hw + BLOCK_HEADER_WORDS;
    if (state === A.STATE_LIVE && type === A.BlockType.CALLBACK && i32[nw + CB_OWNER] === slot && i32[nw + CB_STATE] === L.CBS_FREEING)
      orphans.push(hw);
  });
  for (const hw of orphans) arena.freeBlock(hw);
}
onReap(ReapStage.CALLBACKS, freeOrphanedNodes);

/**
 * Why the calling thread cannot detach now, or null: from inside a fence callback (an inbox drain,
 * a signal's list or its deferred work, a release) the detach would reap the very records and
 * inbox the dispatch is still walking, and the dispatch would go on in a freed slot.
 */
function detachInCallback(arena: Arena): string | null {
  const i32 = arena.i32;
  const b = arena.slotBase;
  if (i32[b + L.T_DRAINING] !== 0 || i32[b + L.T_SIGNAL_DEPTH] !== 0 || i32[b + L.T_RELEASE_DEPTH] !== 0)
    return 'detach from inside a fence callback or release (detach after the dispatch returns)';
  return null;
}
onDetach(detachInCallback);

/**
 * Reap hook: finishes the signals the dead thread of `slot` had in flight (its signal records,
 * innermost first). A fence whose flag went up is notified again (its waiters may have missed
 * the wake); a callback list still on it is detached and run; a detached list is dispatched from
 * the record's node on — that node by its state, the rest as a signal would. Then every live
 * thread's doorbell is rung: a push whose ring was cut off is found. Threads: the reaper.
 */
function finishDeadSignals(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: never inside a signal
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const n = Math.min(i32[b + L.T_SIGNAL_DEPTH], L.SIGNAL_CAP);
  // The deferred lists (signals nested deeper than SIGNAL_INLINE, not run yet) are intact lists:
  // dispatched like a signal's, and apart from every record's (a list moves in one run).
  const deferred = i32[b + L.T_SIGNAL_DEFER];
  i32[b + L.T_SIGNAL_DEFER] = 0;
  i32[b + L.T_SIGNAL_DEFER_TAIL] = 0;
  let first: unknown = NO_ERROR;
  if (deferred !== 0) first = attempt(runDetached, arena, deferred, 0, first);
  for (let j = n - 1; j >= 0; j--) first = attempt(finishSignal, arena, b + L.T_SIGNAL + j * L.SIG_WORDS, slot, first);
  i32[b + L.T_SIGNAL_DEPTH] = 0;
  if (n > 0 || deferred !== 0) ringAll(arena);
  rethrowFirst(first);
}
onReap(ReapStage.SIGNALS, finishDeadSignals);

/** Finishes the signal of record `rec` of dead slot `slot`. */
function finishSignal(arena: Arena, rec: number, slot: number): void {
  const i32 = arena.i32;
  const fw = i32[rec + L.SIG_FW];
  const fenceLive = arena.isLive(fw - BLOCK_HEADER_WORDS, i32[rec + L.SIG_FGEN]);
  const nw = i32[rec + L.SIG_NODE];
  if (nw !== 0) {
    const rest = i32[rec + L.SIG_NEXT];
    let first: unknown = NO_ERROR;
    if (arena.isLive(nw - BLOCK_HEADER_WORDS, i32[rec + L.SIG_NGEN])) first = attempt(finishNode, arena, nw, slot, first);
    else if (i32[rec + L.SIG_SHARED] !== 0) first = attempt(finishShared, arena, rec, 0, first);
    if (rest !== 0) first = attempt(runDetached, arena, rest, 0, first);
    rethrowFirst(first);
  } else if (fenceLive && isSignaledFlag(i32, fw) && i32[fw + L.F_CB_HEAD] !== 0) {
    // Terminated between the flag and the detach (at the waiters' notify): detach it here.
    fenceLock(arena, fw);
    let head = 0;
    try {
      head = i32[fw + L.F_CB_HEAD];
      i32[fw + L.F_CB_HEAD] = 0;
      i32[fw + L.F_CB_TAIL] = 0;
    } finally {
      fenceUnlock(arena, fw);
    }
    if (head > 0) runDetached(arena, head);
  }
  if (fenceLive && isSignaledFlag(i32, fw)) Atomics.notify(i32, fw + L.F_FLAGS);
}

/**
 * The shared handler of record `rec` was cut off after its node's free (the node is gone, SIG_SHARED
 * still names the handler): its reaper, if it has one, finishes what the progress bits say it still
 * holds. Without one the call is lost.
 */
function finishShared(arena: Arena, rec: number): void {
  const i32 = arena.i32;
  const sh = i32[rec + L.SIG_SHARED];
  const reap = sharedReapers[sh & L.SIG_HANDLER_MASK];
  if (reap) reap(arena, i32[rec + L.SIG_SDATA], i32[rec + L.SIG_FW], sh & ~L.SIG_HANDLER_MASK);
}

/** Dispatches node `nw` of a dead signaler's list (live: not dispatched yet) by its kind and state. */
function finishNode(arena: Arena, nw: number, deadSlot: number): void {
  const i32 = arena.i32;
  const kind = i32[nw + CB_KIND];
  if (kind === L.CBK_WAKE) return runWake(arena, nw);
  if (kind === L.CBK_SHARED) {
    const handler = sharedHandlers[i32[nw + CB_TOKEN]];
    const data = sharedTarget(arena, nw);
    const fw = i32[nw + CB_FENCE];
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    handler(arena, data, fw, 0);
    return;
  }
  const state = i32[nw + CB_STATE];
  if (state === L.CBS_QUEUED) return pushQueued(arena, nw, 0, 0); // its reference was taken
  if (state === L.CBS_PENDING && i32[nw + CB_OWNER] !== deadSlot) return deliverRemote(arena, nw, 0, 0);
  // The dead thread's own callback (its function died with it), or one already ended.
  i32[nw + CB_STATE] = L.CBS_DONE;
  arena.freeBlock(nw - BLOCK_HEADER_WORDS);
}

/** Rings every live thread's doorbell (a spurious ring only makes a dispatcher look at its inbox). */
function ringAll(arena: Arena): void {
  const i32 = arena.i32;
  for (let s = 0; s < arena.maxThreads; s++) {
    const ob = arena.slotWord(s);
    if (Atomics.load(i32, ob + A.T_STATE) !== A.SLOT_LIVE) continue;
    Atomics.add(i32, ob + L.T_DOORBELL, 1);
    Atomics.notify(i32, ob + L.T_DOORBELL);
  }
}
