/**
 * Fence callbacks as nodes in the arena, so that any thread can signal a fence whose callbacks
 * belong to other threads. A node says who runs it (owner slot + registration serial) and how:
 * CBK_FN — the owner runs its function (the signaler itself when it is the owner, otherwise the
 * owner's dispatcher after an inbox push and a doorbell ring); CBK_WAKE — the signaler bumps and
 * notifies a word (waitAny, poll), no function involved.
 */
import type { Arena } from '../arena/arena.js';
import * as L from '../arena/layout.js';
import { fenceGet } from './core.js';

const { CB_FENCE, CB_NEXT, CB_PREV, CB_OWNER, CB_TOKEN, CB_STATE, CB_KIND, CB_TARGET, BLOCK_HEADER_WORDS } = L;
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
  const nw = arena.allocBlock(CB_BLOCK, L.BlockType.CALLBACK) + BLOCK_HEADER_WORDS;
  i32[nw + CB_FENCE] = fw;
  i32[nw + CB_NEXT] = 0;
  i32[nw + CB_OWNER] = arena.slot;
  i32[nw + CB_STATE] = L.CBS_PENDING;
  i32[nw + CB_KIND] = kind;
  if (typeof entry === 'number') {
    i32[nw + CB_TOKEN] = entry; // CBK_SHARED: handler id
    i32[nw + CB_TARGET] = target;
  } else if (kind === L.CBK_FN && entry) {
    const token = nextToken++;
    if (nextToken > 0x7fffffff) nextToken = 1;
    entries.set(token, entry);
    i32[nw + CB_TOKEN] = token;
    i32[nw + CB_TARGET] = i32[arena.slotBase + L.T_SERIAL];
  } else {
    i32[nw + CB_TOKEN] = 0;
    i32[nw + CB_TARGET] = target;
  }
  const tail = i32[fw + L.F_CB_TAIL];
  i32[nw + CB_PREV] = tail;
  if (tail) i32[tail + CB_NEXT] = nw;
  else i32[fw + L.F_CB_HEAD] = nw;
  i32[fw + L.F_CB_TAIL] = nw;
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
  if (i32[nw + CB_KIND] === L.CBK_FN) entries.delete(i32[nw + CB_TOKEN]);
  i32[nw + CB_STATE] = L.CBS_DONE;
  arena.freeBlock(hw);
  return true;
}

/**
 * Runs a list detached by signal. Nodes owned by this thread run here, in order; WAKE nodes bump
 * their word; nodes of other threads go to their owner's inbox (with a fence reference the owner
 * drops after running). A throwing callback does not stop the others; the first error is rethrown.
 */
export function runDetached(arena: Arena, head: number): void {
  const i32 = arena.i32;
  let error: unknown;
  let failed = false;
  for (let nw = head; nw !== 0; ) {
    const next = i32[nw + CB_NEXT];
    const kind = i32[nw + CB_KIND];
    if (kind === L.CBK_WAKE) {
      const target = i32[nw + CB_TARGET];
      i32[nw + CB_STATE] = L.CBS_DONE;
      arena.freeBlock(nw - BLOCK_HEADER_WORDS);
      Atomics.add(i32, target, 1);
      Atomics.notify(i32, target);
    } else if (kind === L.CBK_SHARED) {
      const handler = sharedHandlers[i32[nw + CB_TOKEN]];
      const data = i32[nw + CB_TARGET];
      const fw = i32[nw + CB_FENCE];
      i32[nw + CB_STATE] = L.CBS_DONE;
      arena.freeBlock(nw - BLOCK_HEADER_WORDS);
      try {
        handler(arena, data, fw);
      } catch (e) {
        if (!failed) error = e;
        failed = true;
      }
    } else if (i32[nw + CB_OWNER] === arena.slot) {
      try {
        runLocal(arena, nw, false);
      } catch (e) {
        if (!failed) error = e;
        failed = true;
      }
    } else {
      deliverRemote(arena, nw);
    }
    nw = next;
  }
  if (failed) throw error;
}

function runLocal(arena: Arena, nw: number, remote: boolean): void {
  const i32 = arena.i32;
  const token = i32[nw + CB_TOKEN];
  const entry = entries.get(token);
  entries.delete(token);
  i32[nw + CB_STATE] = L.CBS_DONE;
  arena.freeBlock(nw - BLOCK_HEADER_WORDS);
  if (!entry) return;
  try {
    entry.fn(entry.view as never);
  } finally {
    if (remote) putRef(arena, entry.fw);
  }
}

/** Hook installed by fence.ts: drops the reference a remote delivery held. */
let putRef: (arena: Arena, fw: number) => void = () => {};
export function setPutHook(fn: (arena: Arena, fw: number) => void): void {
  putRef = fn;
}

function deliverRemote(arena: Arena, nw: number): void {
  const i32 = arena.i32;
  const owner = i32[nw + CB_OWNER];
  const ob = arena.slotWord(owner);
  if (Atomics.load(i32, ob + L.T_STATE) !== L.SLOT_LIVE || i32[ob + L.T_SERIAL] !== i32[nw + CB_TARGET]) {
    // The owner is gone (its function with it): nothing can run this node.
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    return;
  }
  fenceGet(i32, i32[nw + CB_FENCE]);
  i32[nw + CB_STATE] = L.CBS_QUEUED;
  // Treiber push; the consumer takes the whole stack at once, so ABA cannot bite.
  for (;;) {
    const top = Atomics.load(i32, ob + L.T_INBOX);
    i32[nw + CB_NEXT] = top;
    if (Atomics.compareExchange(i32, ob + L.T_INBOX, top, nw) === top) break;
  }
  Atomics.add(i32, ob + L.T_DOORBELL, 1);
  Atomics.notify(i32, ob + L.T_DOORBELL);
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
  let error: unknown;
  let failed = false;
  for (nw = rev; nw !== 0; ) {
    const next = i32[nw + CB_NEXT];
    try {
      runLocal(arena, nw, true);
    } catch (e) {
      if (!failed) error = e;
      failed = true;
    }
    n++;
    nw = next;
  }
  if (failed) throw error;
  return n;
}

/** Frees every node queued for a dead slot, dropping the fence references they held. */
export function discardInbox(arena: Arena, slot: number): void {
  const i32 = arena.i32;
  let nw = Atomics.exchange(i32, arena.slotWord(slot) + L.T_INBOX, 0);
  while (nw !== 0) {
    const next = i32[nw + CB_NEXT];
    const fw = i32[nw + CB_FENCE];
    i32[nw + CB_STATE] = L.CBS_DONE;
    arena.freeBlock(nw - BLOCK_HEADER_WORDS);
    putRef(arena, fw);
    nw = next;
  }
}
