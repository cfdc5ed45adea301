/**
 * Fence chain (kernel `dma_fence_chain`): a timeline of links, each holding one fence (C_FENCE)
 * and a reference on the previous link or plain fence (C_PREV). A link is signaled when its fence
 * and every earlier one are. Seqnos are always 64-bit.
 *
 * C_PREV changes under garbage collection: walking replaces a signaled predecessor by its own
 * predecessor with a compare-exchange. The kernel reads `prev` under RCU and relies on
 * type-stable memory; arena blocks are reused as anything, so here reading `prev` and taking a
 * reference on it, and the compare-exchange, both happen under the link's small C_PREV_LOCK word
 * (a robust lock: a worker dying inside it cannot wedge the chain). While a link holds its
 * reference on `prev`, `prev` cannot be freed, so the reference taken under the lock is safe.
 *
 * Signaling: enabling arms one shared callback on the fence of the first unsignaled link (from
 * the head down); when it fires — in whichever thread signals that fence — it walks again and
 * re-arms, or signals the chain when nothing is left. The callback holds a chain reference. The
 * references every walk holds — a re-arm's, a signaled-query's, a deadline's — are named in the
 * thread's chain walk records (T_WALK), so a thread terminated inside one leaves them to its
 * reaper (chainwalk.ts).
 *
 * Release is iterative: a predecessor link released from inside its successor's release hands
 * its words over to that successor (emptied by then) instead of putting them itself, so a
 * 100,000-link chain is freed in constant stack depth — and, the queue being the link's own block,
 * a release cut off by terminate() is finished by calling it again (see releaseChain).
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload, linkedPayload, maxBlocks } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { defineSharedCallback } from '../fence/callbacks.js';
import { fenceLock, fenceUnlock } from '../fence/lock.js';
import { FENCE_BLOCK } from '../fence/create.js';
import { fenceView } from '../fence/fence.js';
import { putFence, putFenceAt } from '../fence/release.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { getAt, inWalkRecord } from './chainwalk.js';
import { defineContainerWork } from './work.js';
import { CB_CHAIN_LINK, defineContainer, flushDeferred, holdsLocks, isSignaledFw, putChildAt, runOrDefer } from './common.js';

const { C_PREV, C_PREV_LOCK, C_FENCE, C_PREV_SEQNO_LO, C_PREV_SEQNO_HI, W_LINK, W_PREV, W_AUX } = L;
const { F_REFCOUNT } = FL;

/** Block size of a chain link: the fence plus the C_* words. */
export const CHAIN_BLOCK = FENCE_BLOCK + L.CHAIN_WORDS * 4;

/** The chain link kind (see defineContainer): its ops and kind test. */
const chainKind = defineContainer('dma_fence_chain', {
  enableSignaling: enableChain,
  signaled: chainSignaled,
  release: releaseChain,
  setDeadline: chainSetDeadline,
  // The lock-order checker's nesting annotation: a link's fence or predecessor taken under the link's lock.
  contains: (i32, lfw, fw) => i32[lfw + C_FENCE] === fw || i32[lfw + C_PREV] === fw,
});
/** Ops of chain links (kernel `dma_fence_chain_ops`); registered in every thread that imports this module. */
export const chainOps = chainKind.ops;
/** True when the fence at payload word `fw` is a chain link. */
export const isChainFw = chainKind.is;

/**
 * ops.setDeadline (kernel dma_fence_chain_set_deadline): the fence of every link still on the
 * chain, walked from `fw` down (the walk collects signaled links as it goes, like the kernel's)
 * under a chain walk record (see walkChain).
 */
function chainSetDeadline(arena: Arena, fw: number, ns: bigint): void {
  walkChain(arena, fw, (c) => {
    fenceView(arena, c).setDeadline(ns);
    return true;
  });
}

/**
 * Walks the chain from `fw` (the caller holds a reference on it) down, calling `visit` on the
 * fence of each link (the fence itself at the end) until it returns false. Returns true when the
 * walk reached the end. The walk's references are named in a chain walk record of the thread slot
 * from the run that takes each (getAt, chainGetPrev) to the run that drops it (putFenceAt) or
 * hands it over (chainWalk's collection), so a thread terminated inside `visit` or a step leaves
 * exactly the references its record names, which its reaper drops (CHAIN_WALKS).
 */
function walkChain(arena: Arena, fw: number, visit: (c: number) => boolean): boolean {
  return inWalkRecord(arena, (rec) => walkFrom(arena, fw, rec, visit));
}

/** The walk of {@link walkChain} under record `rec` (0: none, see inWalkRecord). */
function walkFrom(arena: Arena, fw: number, rec: number, visit: (c: number) => boolean): boolean {
  const linkAt = rec === 0 ? 0 : rec + W_LINK;
  getAt(arena.i32, fw, linkAt); // the walk's reference, consumed by chainWalk
  let hops = maxBlocks(arena);
  for (let f = fw; f !== 0; f = chainWalk(arena, f, rec)) {
    let more: boolean;
    try {
      hops = step(hops);
      more = visit(containedFw(arena, f));
    } catch (e) {
      // Recorded: inWalkRecord drops what the record names (W_LINK: f).
      if (rec === 0) putFence(arena, f);
      throw e;
    }
    if (!more) {
      putFenceAt(arena, f, linkAt);
      return false;
    }
  }
  return true;
}

/**
 * Kernel dma_fence_chain_contained: a link's fence, or the fence itself when it is no link. The
 * link's word is read from shared memory and checked (ENOTRECOVERABLE when it names no live fence).
 */
export function containedFw(arena: Arena, fw: number): number {
  const i32 = arena.i32;
  return isChainFw(i32, fw) ? linkedPayload(arena, i32[fw + C_FENCE], A.BlockType.FENCE, 'the fence of a chain link') : fw;
}

/**
 * Counts one more step of a walk down a chain (`hops` left before it): a chain cannot have more
 * links than the heap has blocks, so a walk past that is a corrupted cycle, ENOTRECOVERABLE.
 */
function step(hops: number): number {
  if (hops <= 0) throw Errors.corruptArena('a fence chain does not end');
  return hops - 1;
}

/** Seqno of the predecessor when the link reused its context, else 0. */
export function prevSeqnoOf(i32: Int32Array, fw: number): number {
  return i32[fw + C_PREV_SEQNO_HI] * 0x100000000 + (i32[fw + C_PREV_SEQNO_LO] >>> 0);
}

/**
 * The predecessor of link `fw` with a new reference, or 0 (kernel dma_fence_chain_get_prev).
 * `at` (0 none): a word set to the predecessor in the reference's run (a walk record's, see armChain).
 */
export function chainGetPrev(arena: Arena, fw: number, at = 0): number {
  const i32 = arena.i32;
  acquireWord(arena, fw + C_PREV_LOCK, arena.lockKindId);
  const p = i32[fw + C_PREV];
  // Read from shared memory: checked before the increment (a corrupted word could name anything).
  if (p !== 0 && !isLinkedPayload(arena, p, A.BlockType.FENCE)) {
    releaseWord(arena, fw + C_PREV_LOCK, arena.lockKindId);
    throw Errors.corruptArena(`chain link @${fw * 4} names byte ${p * 4} as its predecessor, no live fence`);
  }
  // The link's own reference keeps p alive while we hold the lock: a plain increment is safe.
  if (p !== 0) {
    Atomics.add(i32, p + F_REFCOUNT, 1);
    if (at !== 0) i32[at] = p;
  }
  releaseWord(arena, fw + C_PREV_LOCK, arena.lockKindId);
  return p;
}

/**
 * Kernel dma_fence_chain_walk: consumes one reference on `fw`, returns the next link (or the
 * plain fence at the end) with a reference, or 0 at the end. Garbage-collects: predecessors whose
 * fence signaled are unlinked with a compare-exchange of C_PREV (under the link's prev lock).
 * `rec` (0 none): a chain walk record (see armChain) whose W_LINK names the reference on `fw`;
 * every reference the step takes, hands over or drops is named there in that run, and on return
 * W_LINK names the one returned (on a throw, the record names what is still held).
 * Threads: any, concurrently with other walkers and signalers.
 */
export function chainWalk(arena: Arena, fw: number, rec = 0): number {
  const i32 = arena.i32;
  const linkAt = rec === 0 ? 0 : rec + W_LINK;
  const prevAt = rec === 0 ? 0 : rec + W_PREV;
  const auxAt = rec === 0 ? 0 : rec + W_AUX;
  if (!isChainFw(i32, fw)) {
    putFenceAt(arena, fw, linkAt);
    return 0;
  }
  let prev: number;
  let hops = maxBlocks(arena);
  while ((prev = chainGetPrev(arena, fw, prevAt)) !== 0) {
    if (hops-- === 0) {
      putFenceAt(arena, prev, prevAt);
      putFenceAt(arena, fw, linkAt);
      throw Errors.corruptArena('a fence chain does not end');
    }
    // No collecting under a lock of the calling thread: dropping a collected link's reference may
    // be the last put of a fence whose lock it holds, refused after the link was changed. The
    // links stay on the chain for a later walk (or the chain's release) to collect.
    if (holdsLocks(arena)) break;
    let replacement: number;
    if (isChainFw(i32, prev)) {
      if (!isSignaledFw(arena, i32[prev + C_FENCE])) break;
      replacement = chainGetPrev(arena, prev, auxAt);
    } else {
      if (!isSignaledFw(arena, prev)) break;
      replacement = 0;
    }
    acquireWord(arena, fw + C_PREV_LOCK, arena.lockKindId);
    const swapped = i32[fw + C_PREV] === prev;
    // The link takes over our reference on the replacement, and its old one on prev is ours to
    // drop: the record's AUX word names that one instead, in the swap's run.
    if (swapped) {
      i32[fw + C_PREV] = replacement;
      if (auxAt !== 0) i32[auxAt] = prev;
    }
    releaseWord(arena, fw + C_PREV_LOCK, arena.lockKindId);
    if (swapped) putFenceAt(arena, prev, auxAt);
    else if (replacement !== 0) putFenceAt(arena, replacement, auxAt);
    putFenceAt(arena, prev, prevAt);
  }
  putFenceAt(arena, fw, linkAt);
  // The returned reference moves from PREV to LINK (plain writes: one run; in between, or before,
  // both words name references still held, each once).
  if (rec !== 0) {
    i32[linkAt] = prev;
    i32[prevAt] = 0;
  }
  return prev;
}

/**
 * Arms the chain callback on the fence of the first unsignaled link from `head` down (kernel
 * dma_fence_chain_enable_signaling). Returns false when everything is signaled. Must not be
 * called with the head's fence lock held; the caller holds a reference on `head`.
 *
 * The references the walk holds are named in a chain walk record of the thread slot (T_WALK):
 * each word is set in the run that takes its reference (the get's Atomics.add, chainGetPrev's
 * under the prev lock) and cleared in the run that drops it (putFenceAt) or hands it over (the
 * callback's reference: the node's link, see linkCallbackLocked; a collected predecessor's: the
 * C_PREV swap). So a thread terminated anywhere in here leaves exactly the references its record
 * names, which the reaper drops (dropWalkRecords, chainwalk.ts); a throw drops them in
 * inWalkRecord.
 */
function armChain(arena: Arena, head: number): boolean {
  return inWalkRecord(arena, (rec) => armFrom(arena, head, rec));
}

/** The walk of {@link armChain} under record `rec` (0: none, see inWalkRecord). */
function armFrom(arena: Arena, head: number, rec: number): boolean {
  const i32 = arena.i32;
  const linkAt = rec === 0 ? 0 : rec + W_LINK;
  const auxAt = rec === 0 ? 0 : rec + W_AUX;
  getAt(i32, head, linkAt); // the walk's reference
  let f = head;
  let cbHeld = false; // the callback's reference, for an unrecorded walk's throw
  let hops = maxBlocks(arena);
  try {
    while (f !== 0) {
      hops = step(hops);
      const c = containedFw(arena, f);
      if (!isSignaledFw(arena, c)) {
        // The callback's reference, handed to the node in its link's run.
        getAt(i32, head, auxAt);
        cbHeld = true;
        const armed = fenceView(arena, c).addShared(CB_CHAIN_LINK, head, auxAt) !== null;
        cbHeld = false;
        if (armed) {
          putFenceAt(arena, f, linkAt);
          return true;
        }
        // Signaled meanwhile: never the last reference (the caller holds one).
        putFenceAt(arena, head, auxAt);
      }
      f = chainWalk(arena, f, rec);
    }
  } catch (e) {
    // Recorded: armChain drops what the record names.
    if (rec === 0) {
      if (cbHeld) putFence(arena, head);
      if (f !== 0) putFence(arena, f);
    }
    throw e;
  }
  return false;
}

/** ops.enableSignaling: entered with the chain lock held; dropped while the links' fences are locked. */
function enableChain(arena: Arena, fw: number): boolean {
  fenceUnlock(arena, fw);
  try {
    flushDeferred(arena);
    return armChain(arena, fw);
  } finally {
    fenceLock(arena, fw);
  }
}

/**
 * Deferred part of CB_CHAIN_LINK: re-arm or signal (the queue then drops the callback's
 * reference). Run again by a reaper after a cut-off run, it arms once more: the extra callback
 * holds a reference of its own, and a signal of a signaled chain is a no-op.
 */
function rearm(arena: Arena, head: number): void {
  if (!armChain(arena, head)) fenceView(arena, head).signal();
}
defineContainerWork(isChainFw, rearm);

/**
 * Shared callback CB_CHAIN_LINK, run by the thread that signals the armed fence. Re-arming takes
 * other fences' locks, so it runs at once only when this thread holds no lock (kernel: irq_work);
 * queued, it is an item of the thread's container work list (the chain's own C_WORK word: no
 * memory needed), and a dead thread's reaper runs it. A re-arm queued already (in any thread's
 * list) and not yet taken off it runs after this call: this one's reference is put instead.
 *
 * Under signal record `rec` (see defineSharedCallback), which names this handler and the chain
 * from before the node's free: its SIG_SHARED is cleared in the run that lets go of the chain
 * reference (the put after the re-arm, or the link that queues it), so a thread
 * terminated in between leaves the re-arm and the put to reapChainLink.
 */
function onChainLink(arena: Arena, head: number, _fw: number, rec = 0): void {
  runOrDefer(arena, head, rec === 0 ? 0 : rec + FL.SIG_SHARED);
}

/**
 * What {@link onChainLink} left when its thread was terminated after the node's free and before it
 * let go of the chain reference (SIGNALS reap stage): the re-arm, from the start (an arm the
 * cut-off run made holds a reference of its own; a signal of a signaled chain is a no-op), then
 * the put.
 */
function reapChainLink(arena: Arena, data: number): void {
  const head = linkedPayload(arena, data, A.BlockType.FENCE, 'the chain of a link callback cut off');
  if (!isChainFw(arena.i32, head)) throw Errors.corruptArena(`the chain callback of a dead thread names fence @${head * 4}, not a chain link`);
  try {
    rearm(arena, head);
  } finally {
    putFence(arena, head);
  }
}

/**
 * ops.signaled: every link's fence signaled (walks and garbage-collects; under a lock of the
 * calling thread the walk collects nothing and reads the fences' flags only, see chainWalk). The
 * walk's references are recorded as a re-arm's are (see walkChain).
 */
function chainSignaled(arena: Arena, fw: number): boolean {
  flushDeferred(arena);
  return walkChain(arena, fw, (c) => isSignaledFw(arena, c));
}

/*
 * The release loop in progress in this thread: link `handLink` is putting its predecessor
 * `handPrev` (see releaseChain). Thread-local, saved and restored around nested releases.
 */
let handArena: Arena | null = null;
let handLink = 0;
let handPrev = 0;

/**
 * ops.release: drops the link's references on its fence and its predecessor, in that order, each
 * word cleared in its drop's run (putChildAt). When the predecessor's drop is its last and it is a
 * link, its own release (nested here) moves its two words into this link — both 0 by then — and
 * clears its own, in one run of plain writes; the loop then drops those. So every reference still
 * to drop is named by a word of a link whose release record is marked in release, and the reaper,
 * calling this again on each such link (innermost first), drops each exactly once.
 */
function releaseChain(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  const into = handLink;
  if (handArena === arena && fw === handPrev && i32[into + C_FENCE] === 0 && i32[into + C_PREV] === 0) {
    handPrev = 0;
    // One run (plain writes, no call): the words are named by exactly one of the two links.
    i32[into + C_FENCE] = i32[fw + C_FENCE];
    i32[into + C_PREV] = i32[fw + C_PREV];
    i32[fw + C_FENCE] = 0;
    i32[fw + C_PREV] = 0;
    return;
  }
  const saved = [handArena, handLink, handPrev] as const;
  let first: unknown = NO_ERROR;
  let hops = maxBlocks(arena);
  try {
    for (;;) {
      first = attempt(putChildAt, arena, fw + C_FENCE, 0, first);
      const stuck = i32[fw + C_FENCE] !== 0; // its drop failed (reported below): not tried again
      const prev = i32[fw + C_PREV];
      if (prev === 0) break;
      handArena = arena;
      handLink = fw;
      handPrev = prev;
      first = attempt(putChildAt, arena, fw + C_PREV, 0, first);
      handPrev = 0;
      // Nothing handed over (a plain fence, not the last reference, a deferred drop), or a drop that
      // failed and left its word (reported below; looping would try it again): done.
      if (stuck || i32[fw + C_PREV] === prev || (i32[fw + C_FENCE] === 0 && i32[fw + C_PREV] === 0)) break;
      hops = step(hops);
    }
  } finally {
    [handArena, handLink, handPrev] = saved;
  }
  rethrowFirst(first);
}

defineSharedCallback(CB_CHAIN_LINK, onChainLink, reapChainLink);
