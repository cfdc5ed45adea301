/**
 * Fence callbacks as nodes in the arena, so that any thread can signal a fence whose callbacks
 * belong to other threads. A node says who runs it (owner slot + registration serial) and how:
 * CBK_FN — the owner runs its function (the signaler itself when it is the owner, otherwise the
 * owner's dispatcher after an inbox push and a doorbell ring); CBK_WAKE — the signaler bumps and
 * notifies a word (waitAny, poll), no function involved.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { fenceGet, fenceLock, fenceUnlock, isSignaledFlag } from './core.js';
import { dropRef, pushRelease } from './drop.js';
import * as TR from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';

const { EV_CB_DONE, EV_CB_QUEUED, EV_CB_RUN, EV_SIGNAL_DONE, TC_CALLBACK } = TR;

const { CB_FENCE, CB_NEXT, CB_PREV, CB_OWNER, CB_TOKEN, CB_STATE, CB_KIND, CB_TARGET } = L;
const { BLOCK_HEADER_WORDS } = A;
const CB_BLOCK = BLOCK_HEADER_WORDS * 4 + L.CB_WORDS * 4;

/** A callback's function and what it is called with, kept in its owner thread. */
export interface CallbackEntry {
  fn: (fence: never) => void;
  /** The view handed to fn (a Fence). */
  view: unknown;
  /** Word index of the fence payload, for the reference a remote delivery holds. */
  fw: number;
  arena: Arena;
}

const entries = new Map<number, CallbackEntry>();

/**
 * Handlers for CBK_SHARED nodes: library code (containers, sync files) registered under the same
 * id in every thread, run by whichever thread signals — like a kernel callback, which runs in the
 * signaler's context. `data` is the node's CB_TARGET word; `fw` the signaled fence.
 */
export type SharedHandler = (arena: Arena, data: number, fw: number) => void;
const sharedHandlers: SharedHandler[] = [];
export function defineSharedCallback(id: number, fn: SharedHandler): void {
  if (!Number.isInteger(id) || id <= 0 || id > 255) throw new RangeError(`shared callback id ${id} not in 1..255`);
  sharedHandlers[id] = fn;
}
let nextToken = 1;

/** Callbacks registered by this thread and not yet run or removed. */
export function pendingCallbackCount(): number {
  return entries.size;
}

/**
 * Listener told when this thread's pending function callbacks go from none to some (`true`) and
 * back (`false`): the runtime holds the process alive and starts the dispatcher on it. Called with
 * the fence lock held on the way up: it must not block or take locks.
 */
export type PendingListener = (arena: Arena, pending: boolean) => void;
let pendingListener: PendingListener | null = null;
export function onPendingCallbacks(fn: PendingListener | null): void {
  pendingListener = fn;
}

/**
 * Appends a node to the fence's list (fence lock held, fence unsignaled). Returns the node's
 * payload word index. Throws ENOMEM (nothing changed).
 */
export function linkCallbackLocked(
  arena: Arena,
  fw: number,
  kind: number,
  entry: CallbackEntry | number | null,
  target: number,
): number {
  const i32 = arena.i32;
  const nw = arena.allocBlock(CB_BLOCK, A.BlockType.CALLBACK) + BLOCK_HEADER_WORDS;
  i32[nw + CB_FENCE] = fw;
  i32[nw + CB_NEXT] = 0;
  i32[nw + CB_OWNER] = arena.slot;
  i32[nw + CB_STATE] = L.CBS_PENDING;
  i32[nw + CB_KIND] = kind;
  if (typeof entry === 'number') {
    i32[nw + CB_TOKEN] = entry; // CBK_SHARED: handler id
    i32[nw + CB_TARGET] = target;
  } else if (kind === L.CBK_FN && entry) {
    i32[nw + CB_TOKEN] = nextToken;
    i32[nw + CB_TARGET] = i32[arena.slotBase + A.T_SERIAL];
  } else {
    i32[nw + CB_TOKEN] = 0;
    i32[nw + CB_TARGET] = target;
  }
  // From allocBlock's return to here there is no call or Atomics op, so worker.terminate() (which
  // lands at calls, Atomics calls and loop back-edges) cannot leave the node allocated but
  // unreachable: it is linked first,
  // the thread-local bookkeeping comes after (a dead owner's linked node is freed at signal).
  const tail = i32[fw + L.F_CB_TAIL];
  i32[nw + CB_PREV] = tail;
  if (tail) i32[tail + CB_NEXT] = nw;
  else i32[fw + L.F_CB_HEAD] = nw;
  i32[fw + L.F_CB_TAIL] = nw;
  if (kind === L.CBK_FN && entry && typeof entry !== 'number') {
    const token = nextToken++;
    if (nextToken > 0x7fffffff) nextToken = 1;
    entries.set(token, entry);
    if (entries.size === 1 && pendingListener) pendingListener(arena, true);
  }
  return nw;
}

/**
 * Unlinks a pending node from an unsignaled fence's list (fence lock held). Returns true when the
 * node (payload `nw`, generation `gen`) was still pending there; the node is freed.
 */
export function unlinkCallbackLocked(arena: Arena, fw: number, nw: number, gen: number): boolean {
  const i32 = arena.i32;
  // Once signaled, the list was detached under this same lock: the node is running or ran.
  if (i32[fw + L.F_FLAGS] & L.FLAG_SIGNALED) return false;
  const hw = nw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen) || i32[nw + CB_STATE] !== L.CBS_PENDING || i32[nw + CB_FENCE] !== fw) return false;
  const prev = i32[nw + CB_PREV];
  const next = i32[nw + CB_NEXT];
  if (prev) i32[prev + CB_NEXT] = next;
  else i32[fw + L.F_CB_HEAD] = next;
  if (next) i32[next + CB_PREV] = prev;
  else i32[fw + L.F_CB_TAIL] = prev;
  // Free before the thread-local bookkeeping (calls): a kill in between must not strand the node.
  const fn = i32[nw + CB_KIND] === L.CBK_FN;
  const token = i32[nw + CB_TOKEN];
  // FREEING, not DONE: if the owner dies right here (at the freeBlock call), its reaper frees it.
  i32[nw + CB_STATE] = i32[nw + CB_OWNER] === arena.slot ? L.CBS_FREEING : L.CBS_DONE;
  arena.freeBlock(hw);
  if (fn && entries.delete(token) && entries.size === 0 && pendingListener) pendingListener(arena, false);
  return true;
}

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
 * everything after it is an intact list.
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
      const handler = sharedHandlers[i32[nw + CB_TOKEN]];
      if (typeof handler !== 'function') throw Errors.corruptArena(`callback node @${nw * 4} names no shared callback`);
      const data = i32[nw + CB_TARGET];
      const fw = i32[nw + CB_FENCE];
      i32[nw + CB_STATE] = L.CBS_DONE;
      arena.freeBlock(nw - BLOCK_HEADER_WORDS);
      first = attempt(handler, arena, data, fw, first);
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

/** A WAKE node: bump and notify its word, then free it (a bump repeated by a reaper is harmless). */
function runWake(arena: Arena, nw: number): void {
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
 * Runs one delivered node at the head of the list being drained (T_DRAINING = nw). The node stays
 * allocated and QUEUED while its function runs, so a thread terminated inside it leaves node and
 * delivery reference to its reaper. Order after the function: drop the reference and mark DONE,
 * unlink (T_DRAINING = next), free — each step at most one Atomics op followed by plain writes,
 * so a thread killed anywhere leaves what its reaper can finish exactly (see the comments below).
 */
function runRemote(arena: Arena, nw: number, next: number): void {
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
    // FREEING with the hand-over of the list head, in one run of plain writes: a terminate() at
    // the freeBlock call leaves a node only freeOrphanedNodes claims (discardInbox takes DONE heads).
    i32[nw + CB_STATE] = L.CBS_FREEING;
    i32[sb + L.T_DRAINING] = next;
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
function deliverRemote(arena: Arena, nw: number, rec: number, next: number): void {
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
function pushQueued(arena: Arena, nw: number, rec: number, next: number): void {
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
 * Threads: the owner (its dispatcher, or a blocking worker draining explicitly).
 */
export function drainInbox(arena: Arena): number {
  const i32 = arena.i32;
  let nw = Atomics.exchange(i32, arena.slotBase + L.T_INBOX, 0);
  if (nw === 0) return 0;
  let rev = 0;
  while (nw !== 0) {
    const next = i32[nw + CB_NEXT];
    i32[nw + CB_NEXT] = rev;
    rev = nw;
    nw = next;
  }
  let n = 0;
  let first: unknown = NO_ERROR;
  // The detached list stays reachable from shared memory (T_DRAINING) until each node starts: a
  // thread terminated mid-drain leaves the rest to its reaper instead of leaking them.
  const sb = arena.slotBase;
  i32[sb + L.T_DRAINING] = rev;
  for (nw = rev; nw !== 0; ) {
    const next = i32[nw + CB_NEXT];
    first = attempt(runRemote, arena, nw, next, first);
    n++;
    nw = next;
  }
  rethrowFirst(first);
  return n;
}

/**
 * Frees every node queued for a dead slot — in its inbox, and the rest of a list it was draining —
 * dropping the fence references they held (and the one of a callback it died in).
 */
export function discardInbox(arena: Arena, slot: number): void {
  const i32 = arena.i32;
  const sb = arena.slotWord(slot);
  if (slot !== arena.slot) {
    // A dead thread's list in progress: its head may be DONE (reference already put, node not
    // yet freed); every other node is still QUEUED with its delivery reference.
    let nw = i32[sb + L.T_DRAINING];
    i32[sb + L.T_DRAINING] = 0;
    if (nw !== 0 && i32[nw + CB_STATE] === L.CBS_DONE) {
      const next = i32[nw + CB_NEXT];
      arena.freeBlock(nw - BLOCK_HEADER_WORDS);
      nw = next;
    }
    discardList(arena, nw);
  }
  discardList(arena, Atomics.exchange(i32, sb + L.T_INBOX, 0));
}

function discardList(arena: Arena, head: number): void {
  const i32 = arena.i32;
  let nw = head;
  while (nw !== 0) {
    const next = i32[nw + CB_NEXT];
    const fw = i32[nw + CB_FENCE];
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    putRef(arena, fw);
    nw = next;
  }
}

/**
 * A thread killed between marking one of its own nodes FREEING and freeing it (worker.terminate()
 * lands at the freeBlock call) leaves the node unreachable. Only the owner marks FREEING, and the
 * owner is dead when its slot is reaped, so freeing those nodes here cannot race anyone.
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
  let first: unknown = NO_ERROR;
  for (let j = n - 1; j >= 0; j--) first = attempt(finishSignal, arena, b + L.T_SIGNAL + j * L.SIG_WORDS, slot, first);
  i32[b + L.T_SIGNAL_DEPTH] = 0;
  if (n > 0) ringAll(arena);
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

/** Dispatches node `nw` of a dead signaler's list (live: not dispatched yet) by its kind and state. */
function finishNode(arena: Arena, nw: number, deadSlot: number): void {
  const i32 = arena.i32;
  const kind = i32[nw + CB_KIND];
  if (kind === L.CBK_WAKE) return runWake(arena, nw);
  if (kind === L.CBK_SHARED) {
    const handler = sharedHandlers[i32[nw + CB_TOKEN]];
    const data = i32[nw + CB_TARGET];
    const fw = i32[nw + CB_FENCE];
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    handler(arena, data, fw);
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
