/**
 * Delivering fence callbacks (nodes of callbacks.ts): running a list detached by signal — here,
 * or queued to the owner's inbox with a doorbell ring — and draining or discarding an inbox.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { fenceGet } from './core.js';
import { dropRef, pushRelease } from './drop.js';
import { entries, pendingListener, sharedHandlers, sharedTarget, type SharedHandler } from './callbacks.js';
import * as TR from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';

const { EV_CB_DONE, EV_CB_QUEUED, EV_CB_RUN, EV_SIGNAL_DONE, TC_CALLBACK } = TR;

const { CB_FENCE, CB_NEXT, CB_OWNER, CB_TOKEN, CB_STATE, CB_KIND, CB_TARGET } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * Runs a list detached by signal. Nodes owned by this thread run here, in order; WAKE nodes bump
 * their word; nodes of other threads go to their owner's inbox (with a fence reference the owner
 * drops after running). A throwing callback does not stop the others; the first error is rethrown.
 *
 * `rec` (0 none) is the signal record (src/fence/signal.ts) that names the list's next node, its
 * generation and its successor. Each node is freed only once its dispatch has taken effect (a
 * wake bumped, a handler or function started, a remote node pushed — the push moves the record
 * in its own run, since the owner frees the node later), so for the reaper of a thread
 * terminated here the record's node, if still live at its generation, is not dispatched yet, and
 * everything after it is an intact list. A shared node's handler runs under the record, which
 * names it (SIG_SHARED, SIG_SDATA) from before the node's free: see defineSharedCallback.
 */
export function runDetached(arena: Arena, head: number, rec = 0): void {
  const i32 = arena.i32;
  let first: unknown = NO_ERROR;
  // For the trace: the fence (its nodes are freed as they run) and what happened to its callbacks.
  const traced = tracing(i32, TC_CALLBACK);
  const fw = i32[head + CB_FENCE];
  const gen = i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  let here = 0;
  let queued = 0;
  // Every node is checked before it is used, and the walk is bounded: a corrupted list ends in
  // ENOTRECOVERABLE (after the nodes before the bad link ran), never in a hang or a RangeError.
  let hops = maxBlocks(arena);
  for (let nw = head; nw !== 0; ) {
    if (hops-- === 0) throw Errors.corruptArena('a callback list does not end');
    linkedPayload(arena, nw, A.BlockType.CALLBACK, 'callback node');
    const next = i32[nw + CB_NEXT];
    const kind = i32[nw + CB_KIND];
    if (kind === L.CBK_WAKE) {
      runWake(arena, nw);
    } else if (kind === L.CBK_SHARED) {
      const id = i32[nw + CB_TOKEN];
      const handler = sharedHandlers[id];
      if (typeof handler !== 'function') throw Errors.corruptArena(`callback node @${nw * 4} names no shared callback`);
      const data = sharedTarget(arena, nw);
      const fw = i32[nw + CB_FENCE];
      // The handler and its target go into the record before the node's free: a reaper that finds
      // the node still live runs it from scratch (finishNode); once it is freed, what the node held
      // is the handler's, and SIG_SHARED — with the progress bits the handler adds, cleared when it
      // lets go — tells the reaper what is left (defineSharedCallback's reap).
      if (rec !== 0) {
        i32[rec + L.SIG_SDATA] = data;
        i32[rec + L.SIG_SHARED] = id;
      }
      i32[nw + CB_STATE] = L.CBS_DONE;
      arena.freeBlock(nw - BLOCK_HEADER_WORDS);
      first = runShared(handler, arena, data, fw, rec, first);
      // Plain write after the return (no interrupt point between): a handler without a reaper
      // leaves nothing for one.
      if (rec !== 0) i32[rec + L.SIG_SHARED] = 0;
    } else if (i32[nw + CB_OWNER] === arena.slot) {
      first = attempt(runLocal, arena, nw, 0, first);
      here++;
    } else {
      deliverRemote(arena, nw, rec, next);
      queued++;
    }
    if (rec !== 0) advanceRecord(i32, rec, next);
    nw = next;
  }
  if (traced) traceEvent(arena, EV_SIGNAL_DONE, fw, gen, here, queued, 0);
  rethrowFirst(first);
}

/** Calls shared handler `fn` like {@link attempt}: returns `first`, or what it threw when `first` is still NO_ERROR. */
function runShared(fn: SharedHandler, arena: Arena, data: number, fw: number, rec: number, first: unknown): unknown {
  try {
    fn(arena, data, fw, rec);
  } catch (e) {
    return first === NO_ERROR ? e : first;
  }
  return first;
}

/** A WAKE node: bump and notify its word, then free it (a bump repeated by a reaper is harmless). */
export function runWake(arena: Arena, nw: number): void {
  const i32 = arena.i32;
  const target = i32[nw + CB_TARGET];
  if (!(target > 0 && target < i32.length)) throw Errors.corruptArena(`wake node @${nw * 4} points outside the arena`);
  Atomics.add(i32, target, 1);
  Atomics.notify(i32, target);
  i32[nw + CB_STATE] = L.CBS_DONE;
  arena.freeBlock(nw - BLOCK_HEADER_WORDS);
}

/** Moves signal record `rec` on to node `next` (plain writes; `next` is not dispatched yet, its link intact). */
function advanceRecord(i32: Int32Array, rec: number, next: number): void {
  i32[rec + L.SIG_NODE] = next;
  i32[rec + L.SIG_NGEN] = next === 0 ? 0 : i32[next - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[rec + L.SIG_NEXT] = next === 0 ? 0 : i32[next + CB_NEXT];
}

/** Runs a node of the calling thread detached by its own signal. */
function runLocal(arena: Arena, nw: number): void {
  const i32 = arena.i32;
  const token = i32[nw + CB_TOKEN];
  const traced = tracing(i32, TC_CALLBACK);
  const gen = i32[nw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  const fw = i32[nw + CB_FENCE];
  i32[nw + CB_STATE] = L.CBS_FREEING; // our own node: see freeOrphanedNodes
  arena.freeBlock(nw - BLOCK_HEADER_WORDS);
  const entry = entries.get(token);
  if (entry && entries.delete(token) && entries.size === 0 && pendingListener) pendingListener(arena, false);
  if (!entry) return;
  if (traced) traceEvent(arena, EV_CB_RUN, nw, gen, fw, i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK, 1);
  try {
    entry.fn(entry.view as never);
  } finally {
    if (traced) traceEvent(arena, EV_CB_DONE, nw, gen, 0, 0, 0);
  }
}

/**
 * Runs one delivered node, the tail (oldest) of the list being drained; `link` is the word that
 * points at it. The node stays allocated and QUEUED while its function runs, so a thread
 * terminated inside it leaves node and delivery reference to its reaper. Order after the
 * function: drop the reference and mark DONE, unlink (`link` = 0), free — each step at most one
 * Atomics op followed by plain writes, so a thread killed anywhere leaves what its reaper can
 * finish exactly (see the comments below).
 */
function runRemote(arena: Arena, nw: number, link: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const token = i32[nw + CB_TOKEN];
  const fw = i32[nw + CB_FENCE];
  // A node pushed to a slot that died and was taken by a new thread carries the old occupant's
  // serial: its token means nothing here (and may collide with one of ours).
  const entry = i32[nw + CB_TARGET] === i32[sb + A.T_SERIAL] ? entries.get(token) : undefined;
  if (entry && entries.delete(token) && entries.size === 0 && pendingListener) pendingListener(arena, false);
  const traced = entry !== undefined && tracing(i32, TC_CALLBACK);
  const gen = i32[nw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  try {
    if (traced) traceEvent(arena, EV_CB_RUN, nw, gen, fw, i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK, 0);
    if (entry) entry.fn(entry.view as never);
  } finally {
    // Before the drop's run below, not inside it (a call there would split it).
    if (traced) traceEvent(arena, EV_CB_DONE, nw, gen, 0, 0, 0);
    // DONE means "delivery reference dropped": discardInbox puts a QUEUED node's reference and
    // only frees a DONE one. DONE is written in the drop's run (see dropRef): a terminate()
    // leaves a QUEUED node with its reference or a DONE one without, and a dropped last
    // reference is released by the reaper if we die before the release is done.
    const d = pushRelease(arena, fw);
    if (dropRef(arena, fw, d, nw + CB_STATE, L.CBS_DONE) === 1) releaseLast(arena, fw, d);
    // FREEING with the unlink (the word pointing at this tail node: T_DRAINING or the next newer
    // node's CB_NEXT), in one run of plain writes: a terminate() at the freeBlock call leaves a
    // node only freeOrphanedNodes claims (discardInbox frees a DONE one without putting it).
    i32[nw + CB_STATE] = L.CBS_FREEING;
    i32[link] = 0;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
  }
}

/**
 * Hooks installed by release.ts (which sits above this module): drop a reference (putRef), release
 * after the last one was dropped under release record `depth` (releaseLast).
 */
let putRef: (arena: Arena, fw: number) => void = () => {};
let releaseLast: (arena: Arena, fw: number, depth: number) => void = () => {};
export function setPutHook(put: (arena: Arena, fw: number) => void, release: (arena: Arena, fw: number, depth: number) => void): void {
  putRef = put;
  releaseLast = release;
}

/**
 * Queues node `nw` (PENDING) to its owner's inbox with a fence reference, or frees it when the
 * owner is gone. `rec`/`next`: the signal record to move on to `next` in the push's run (0: none).
 * The reference is taken and the node marked QUEUED in one run (the get's compare-exchange, then
 * plain writes): a reaper finding the node QUEUED only has the push left (see pushQueued).
 */
export function deliverRemote(arena: Arena, nw: number, rec: number, next: number): void {
  const i32 = arena.i32;
  const owner = i32[nw + CB_OWNER];
  if (!(owner >= 0 && owner < arena.maxThreads)) throw Errors.corruptArena(`callback node @${nw * 4} names thread slot ${owner}`);
  const ob = arena.slotWord(owner);
  if (Atomics.load(i32, ob + A.T_STATE) !== A.SLOT_LIVE || i32[ob + A.T_SERIAL] !== i32[nw + CB_TARGET]) {
    // The owner is gone (its function with it): nothing can run this node.
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    return;
  }
  fenceGet(i32, i32[nw + CB_FENCE]);
  i32[nw + CB_STATE] = L.CBS_QUEUED;
  pushQueued(arena, nw, rec, next);
}

/**
 * Pushes QUEUED node `nw` (its delivery reference taken) to its owner's inbox and rings the
 * doorbell; an owner that died meanwhile gets its inbox discarded (the reference put, the node
 * freed). With `rec`, the signal record moves on to `next` in the run of the successful push.
 */
export function pushQueued(arena: Arena, nw: number, rec: number, next: number): void {
  const i32 = arena.i32;
  const owner = i32[nw + CB_OWNER];
  const ob = arena.slotWord(owner);
  const fw = i32[nw + CB_FENCE];
  // Read now for the trace: once pushed, the owner may run the node, free it and drop the fence.
  const traced = tracing(i32, TC_CALLBACK);
  const ngen = i32[nw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  const fgen = i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  // Treiber push; the consumer takes the whole stack at once, so ABA cannot bite.
  for (;;) {
    const top = Atomics.load(i32, ob + L.T_INBOX);
    i32[nw + CB_NEXT] = top;
    if (Atomics.compareExchange(i32, ob + L.T_INBOX, top, nw) === top) {
      // Pushed: the node is the owner's now (it may run and free it at once). The record moves
      // on in this run — plain writes, no call — so a reaper never pushes it twice.
      if (rec !== 0) {
        i32[rec + L.SIG_NODE] = next;
        i32[rec + L.SIG_NGEN] = next === 0 ? 0 : i32[next - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
        i32[rec + L.SIG_NEXT] = next === 0 ? 0 : i32[next + CB_NEXT];
      }
      break;
    }
  }
  Atomics.add(i32, ob + L.T_DOORBELL, 1);
  Atomics.notify(i32, ob + L.T_DOORBELL);
  if (traced) traceEvent(arena, EV_CB_QUEUED, nw, ngen, owner, fw, fgen);
  // The owner may have died between our check and the push, and its reaper may already have
  // emptied the inbox: look again after the push, and if it is gone, discard what is there
  // ourselves (the reaper's exchange and ours take disjoint sets, so nothing runs or drops twice).
  if (Atomics.load(i32, ob + A.T_STATE) === A.SLOT_DEAD) discardInbox(arena, owner);
}

/**
 * Runs every callback queued in this thread's inbox, oldest first. Returns how many ran.
 * Threads: the owner (its dispatcher, or a blocking worker draining explicitly), not from inside
 * one of its callbacks (EDEADLK: callbacks run one at a time, to completion). Throws EINVAL (not
 * an Arena).
 */
export function drainInbox(arena: Arena): number {
  const i32 = arenaArg(arena, 'drainInbox').i32;
  const sb = arena.slotBase;
  if (i32[sb + L.T_DRAINING] !== 0) throw Errors.deadlock('drainInbox from inside a callback of the same thread: callbacks run one at a time');
  // The taken list stays reachable from shared memory (T_DRAINING) in the exchange's own run, and
  // keeps its pushed order (newest first): the nodes run from the tail, each unlinked as it ends,
  // so a thread terminated anywhere in the drain leaves the rest to its reaper (discardInbox).
  const head = Atomics.exchange(i32, sb + L.T_INBOX, 0);
  i32[sb + L.T_DRAINING] = head;
  if (head === 0) return 0;
  const nodes: number[] = [];
  // Checked and bounded like runDetached's walk: the pushed links are shared memory too.
  let hops = maxBlocks(arena);
  try {
    for (let nw = head; nw !== 0; nw = i32[nw + CB_NEXT]) {
      if (hops-- === 0) throw Errors.corruptArena('an inbox does not end');
      linkedPayload(arena, nw, A.BlockType.CALLBACK, 'inbox node');
      nodes.push(nw);
    }
  } catch (e) {
    i32[sb + L.T_DRAINING] = 0; // a corrupted list is reported, not mistaken later for a drain in progress
    throw e;
  }
  let first: unknown = NO_ERROR;
  for (let k = nodes.length - 1; k >= 0; k--) {
    first = attempt(runRemote, arena, nodes[k], k === 0 ? sb + L.T_DRAINING : nodes[k - 1] + CB_NEXT, first);
  }
  rethrowFirst(first);
  return nodes.length;
}

/**
 * Frees every node queued for a dead slot — in its inbox, and the rest of a list it was draining —
 * dropping the fence references they held (and the one of a callback it died in).
 */
export function discardInbox(arena: Arena, slot: number): void {
  const i32 = arena.i32;
  const sb = arena.slotWord(slot);
  if (slot !== arena.slot) {
    // A dead thread's list in progress: its tail may be DONE (reference already put, node not
    // yet unlinked); every other node is still QUEUED with its delivery reference. Taken with an
    // exchange, as the inbox is: the slot's reaper and a pusher that saw the owner dead
    // (pushQueued) may both get here, and only one may discard the list.
    discardList(arena, Atomics.exchange(i32, sb + L.T_DRAINING, 0));
  }
  discardList(arena, Atomics.exchange(i32, sb + L.T_INBOX, 0));
}

function discardList(arena: Arena, head: number): void {
  const i32 = arena.i32;
  let nw = head;
  let hops = maxBlocks(arena);
  while (nw !== 0) {
    if (hops-- === 0) throw Errors.corruptArena('a discarded inbox does not end');
    linkedPayload(arena, nw, A.BlockType.CALLBACK, 'inbox node');
    const next = i32[nw + CB_NEXT];
    const fw = i32[nw + CB_FENCE];
    const queued = i32[nw + CB_STATE] !== L.CBS_DONE;
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    if (queued) putRef(arena, fw);
    nw = next;
  }
}
