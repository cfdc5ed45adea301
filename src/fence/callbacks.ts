/**
 * Fence callbacks as nodes in the arena, so that any thread can signal a fence whose callbacks
 * belong to other threads. A node says who runs it (owner slot + registration serial) and how:
 * CBK_FN — the owner runs its function (the signaler itself when it is the owner, otherwise the
 * owner's dispatcher after an inbox push and a doorbell ring); CBK_WAKE — the signaler bumps and
 * notifies a word (waitAny, poll), no function involved.
 *
 * This file is the nodes' life: registering (link) and removing (unlink), and the thread-local
 * functions they name. Running a detached list and the inbox are inbox.ts; finishing what a dead
 * thread left is callbackreap.ts.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { describeValue, Errors } from '../errors.js';

const { CB_FENCE, CB_NEXT, CB_PREV, CB_OWNER, CB_TOKEN, CB_STATE, CB_KIND, CB_TARGET } = L;
const { BLOCK_HEADER_WORDS } = A;
/** Bytes of a callback node's block, header included (its size class rounds it up). */
export const CB_BLOCK = BLOCK_HEADER_WORDS * 4 + L.CB_WORDS * 4;

/** A callback's function and what it is called with, kept in its owner thread. */
export interface CallbackEntry {
  fn: (fence: never) => void;
  /** The view handed to fn (a Fence). */
  view: unknown;
  /** Word index of the fence payload, for the reference a remote delivery holds. */
  fw: number;
  arena: Arena;
}

export const entries = new Map<number, CallbackEntry>();

/**
 * Handlers for CBK_SHARED nodes: library code (containers, sync files) registered under the same
 * id in every thread, run by whichever thread signals — like a kernel callback, which runs in the
 * signaler's context. `data` is the node's CB_TARGET word; `fw` the signaled fence.
 */
export type SharedHandler = (arena: Arena, data: number, fw: number, rec: number) => void;
export const sharedHandlers: SharedHandler[] = [];
/**
 * What a reaper does for a shared handler whose thread was terminated inside it, after the node was
 * freed (its call started): `step` is the progress bits (SIG_STEP_1 and up) the handler had set in
 * its signal record's SIG_SHARED word, `data` and `fw` what the handler was called with.
 */
export type SharedReaper = (arena: Arena, data: number, fw: number, step: number) => void;
export const sharedReapers: (SharedReaper | undefined)[] = [];
/**
 * Registers shared handler `fn` under `id` (1..255), in every thread that may signal its nodes.
 *
 * `fn`'s `rec` is the signal record it runs under (0: none — run by a reaper): the record's SIG_SHARED word holds `id` from before the node's free. A handler that
 * holds something the node held (a reference on its target) says how far it got by setting progress
 * bits in that word in the run of each step's Atomics op, and clears the word in the run of the op
 * that lets go of the last thing it holds; `reap` finishes, for a terminated thread, whatever the
 * word still says it holds. Without `reap`, a handler cut off after the node's free is lost.
 */
export function defineSharedCallback(id: number, fn: SharedHandler, reap?: SharedReaper): void {
  if (!Number.isInteger(id) || id <= 0 || id > 255) throw new RangeError(`shared callback id ${describeValue(id)} not in 1..255`);
  sharedHandlers[id] = fn;
  sharedReapers[id] = reap;
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
export let pendingListener: PendingListener | null = null;
export function onPendingCallbacks(fn: PendingListener | null): void {
  pendingListener = fn;
}

/**
 * The target of CBK_SHARED node `nw`, checked: every shared handler's `data` is a fence payload
 * word (an array, a chain's head, a job) that it takes locks and drops references on, and the word
 * is read from shared memory, so a corrupted one throws ENOTRECOVERABLE instead. (The node's fence
 * is not checked: a reaper may finish a node whose fence is gone; handlers only read its words.)
 */
export function sharedTarget(arena: Arena, nw: number): number {
  return linkedPayload(arena, arena.i32[nw + CB_TARGET], A.BlockType.FENCE, `the target of shared callback node @${nw * 4}`);
}

/**
 * Appends a node to the fence's list (fence lock held, fence unsignaled). Returns the node's
 * payload word index. Throws ENOMEM (nothing changed). `at` (0 none): a word of the caller's
 * cleared in the link's run — for a caller whose record names a reference the node takes over
 * (a chain re-arm's callback reference), so that its reaper never drops it a second time.
 */
export function linkCallbackLocked(
  arena: Arena,
  fw: number,
  kind: number,
  entry: CallbackEntry | number | null,
  target: number,
  at = 0,
): number {
  const i32 = arena.i32;
  // The tail is written through below: checked first (before the allocation, which must be
  // followed by no call until the node is linked), so a corrupted one is an error, not a stray write.
  const tail0 = i32[fw + L.F_CB_TAIL];
  if (tail0 !== 0) linkedPayload(arena, tail0, A.BlockType.CALLBACK, 'the callback tail of a fence');
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
  if (at !== 0) i32[at] = 0;
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
 * node (payload `nw`, generation `gen`) was still pending there; the node is freed. `at` (0 none):
 * a word of the caller's set to 1 in the unlink's run, before the free — for a caller whose thread
 * then holds what the node held (a shared node's reference), so that its reaper knows (the node
 * itself may then still be live, unlinked: the caller's reaper frees it). Throws EPERM, changing
 * nothing, for a function callback another thread added (its function is in that thread's table).
 */
export function unlinkCallbackLocked(arena: Arena, fw: number, nw: number, gen: number, at = 0): boolean {
  const i32 = arena.i32;
  // Once signaled, the list was detached under this same lock: the node is running or ran.
  if (i32[fw + L.F_FLAGS] & L.FLAG_SIGNALED) return false;
  const hw = nw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen) || i32[nw + CB_STATE] !== L.CBS_PENDING || i32[nw + CB_FENCE] !== fw) return false;
  // A function callback's function is in the table of the thread that added it: removed by
  // another thread, it would stay there (keeping that thread's process alive) while this thread
  // dropped an entry of its own under the same token. Refused before anything changes.
  const owner = i32[nw + CB_OWNER];
  if (i32[nw + CB_KIND] === L.CBK_FN && owner !== arena.slot)
    throw Errors.notPermitted(`a function callback can be removed only by the thread that added it (thread ${owner}; this is thread ${arena.slot})`);
  const prev = i32[nw + CB_PREV];
  const next = i32[nw + CB_NEXT];
  // Both neighbours are written through: checked first (nothing changed if one is corrupted).
  if (prev) linkedPayload(arena, prev, A.BlockType.CALLBACK, 'the previous callback node');
  if (next) linkedPayload(arena, next, A.BlockType.CALLBACK, 'the next callback node');
  if (prev) i32[prev + CB_NEXT] = next;
  else i32[fw + L.F_CB_HEAD] = next;
  if (next) i32[next + CB_PREV] = prev;
  else i32[fw + L.F_CB_TAIL] = prev;
  // Free before the thread-local bookkeeping (calls): a kill in between must not strand the node.
  const fn = i32[nw + CB_KIND] === L.CBK_FN;
  const token = i32[nw + CB_TOKEN];
  // FREEING, not DONE: if this thread dies right here (at the freeBlock call), its reaper frees
  // the node (freeOrphanedNodes: the FREEING nodes it owns). Another thread's node (a wake or
  // shared callback: nothing of it in that thread's table) is taken over first, in the same run.
  i32[nw + CB_OWNER] = arena.slot;
  i32[nw + CB_STATE] = L.CBS_FREEING;
  if (at !== 0) i32[at] = 1;
  arena.freeBlock(hw);
  if (fn && entries.delete(token) && entries.size === 0 && pendingListener) pendingListener(arena, false);
  return true;
}
