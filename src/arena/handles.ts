/**
 * Handles: the numbers that name arena blocks across threads. A handle is a safe integer wider
 * than 32 bits, `generation * HANDLE_OFFSET_SCALE + (header word / 2)`, so a handle kept past its
 * block's free no longer matches the block's generation and is refused instead of reaching the
 * block's next owner.
 */
import { Errors } from '../errors.js';
import type { Arena } from './arena.js';
import * as L from './layout.js';
import { selfCheck } from './layout.js';

const { B_GEN, B_TAG, GEN_MASK, HANDLE_OFFSET_MASK, HANDLE_OFFSET_SCALE, STATE_LIVE, TAG_CLASS_MASK, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_TYPE_MASK, TAG_TYPE_SHIFT } = L;

/** What a handle that lost its high bits is told (see the README's note on handles). */
const TRUNCATED =
  'it looks truncated to 32 bits: handles are safe integers wider than 32 bits, so never store them in an Int32Array; ' +
  'publish a fence through a FenceSlot, or a handle through a Float64Array/BigInt64Array word';

/** Handle of the live block whose header is at word `hw` (see {@link Arena.handleOf}). */
export function handleOf(i32: Int32Array, hw: number): number {
  return (i32[hw + B_GEN] & GEN_MASK) * HANDLE_OFFSET_SCALE + (hw >>> 1);
}

/**
 * The generation a handle names (its high part), read from the handle itself: a check against it
 * holds even once the block was freed and reused, where the header already has the new generation.
 */
export function handleGen(handle: number): number {
  return Math.floor(handle / HANDLE_OFFSET_SCALE);
}

/**
 * Validates `handle` against `arena`'s heap and returns its block's header word index (see
 * {@link Arena.resolve}). Throws EBADF (not a handle, out of bounds, misaligned, freed, stale
 * generation) or EINVAL (a live block of another type than `type`; -1 accepts any type).
 *
 * The fast path takes a handle of a live block with plain reads only: the heap's end is fixed, and
 * memory between the bump pointer and the end was never carved (all zero: no self-check byte, no
 * live state), so a handle into it fails a check below just as one past the end does. Anything
 * that fails goes to {@link explainHandle}, which finds the reason.
 *
 * Small on purpose: it splits the handle into two small integers here and checks them in
 * {@link liveBlockAt}. Handles are wider than 32 bits, so a handle passed to a call that V8 does
 * not inline is a heap-allocated number; this function fits into its callers' inlining budget
 * (the public free does not fit whole into a loop that also allocates), and what it passes on
 * are small integers, passed without allocating.
 */
export function resolve(arena: Arena, handle: number, type: number, what: string): number {
  const hw = Number.isSafeInteger(handle) && handle > 0 ? liveBlockAt(arena, (handle & HANDLE_OFFSET_MASK) * 2, (handle / HANDLE_OFFSET_SCALE) | 0, type) : -1;
  return hw >= 0 ? hw : explainHandle(arena, handle, type, what);
}

/**
 * The header word `hw` when a live block of type `type` (-1: any) and generation `gen` has its
 * header there; -1 otherwise (resolve's fast path: plain reads only, see there).
 */
function liveBlockAt(arena: Arena, hw: number, gen: number, type: number): number {
  if (hw < arena.heapStartW || hw >= arena.heapEndW || (hw & 3) !== 0) return -1;
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  const g = i32[hw + B_GEN];
  return (g & GEN_MASK) === gen &&
    g >>> 24 === selfCheck(hw) &&
    ((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) === STATE_LIVE &&
    (tag & TAG_CLASS_MASK) < L.NCLASSES &&
    (type < 0 || ((tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK) === type)
    ? hw
    : -1;
}

/**
 * Checks a link read from shared memory (a list's next word, a node's fence word): `pw` must be the
 * payload word of a live block of type `type`. Returns `pw`; throws ENOTRECOVERABLE naming `what`
 * when it is not (a corrupted arena: following it could read or write anywhere, or never end).
 */
export function linkedPayload(arena: Arena, pw: number, type: number, what: string): number {
  if (liveBlockType(arena, pw - L.BLOCK_HEADER_WORDS) !== type) throw Errors.corruptArena(`${what} @${pw * 4} is no live ${L.BLOCK_TYPE_NAMES[type] ?? type} block`);
  return pw;
}

/** {@link linkedPayload}'s test without the throw: is `pw` the payload word of a live block of type `type`? */
export function isLinkedPayload(arena: Arena, pw: number, type: number): boolean {
  return liveBlockType(arena, pw - L.BLOCK_HEADER_WORDS) === type;
}

/** Type of the live block with its header at `hw`, or -1 when no live block is there. */
function liveBlockType(arena: Arena, hw: number): number {
  if (!Number.isInteger(hw) || hw < arena.heapStartW || hw >= arena.heapEndW || (hw & 3) !== 0) return -1;
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  if (i32[hw + B_GEN] >>> 24 !== selfCheck(hw) || ((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) !== STATE_LIVE || (tag & TAG_CLASS_MASK) >= L.NCLASSES) return -1;
  return (tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK;
}

/**
 * The most blocks the arena's heap can hold: a bound on any walk over a list of them, so that a
 * corrupted link making a cycle ends in ENOTRECOVERABLE instead of a hang.
 */
export function maxBlocks(arena: Arena): number {
  return ((arena.heapEndW - arena.heapStartW) >>> 2) + 1;
}

/** resolve's slow path: every check in order, throwing on the first that fails (returns `hw` if none does). */
function explainHandle(arena: Arena, handle: number, type: number, what: string): number {
  const why = handleFault(arena, handle);
  if (why !== null) throw Errors.badHandle(what, handle, why);
  const hw = (handle & HANDLE_OFFSET_MASK) * 2;
  const t = (arena.i32[hw + B_TAG] >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK;
  if (type >= 0 && t !== type) throw Errors.invalid(`handle ${handle} is a ${L.BLOCK_TYPE_NAMES[t] ?? t} block, not a ${what}`);
  // Another thread carved, allocated or freed the block between the fast path's reads and these.
  return hw;
}

const FREED = 'block was freed';
const REUSED = 'stale generation (the block was freed and reused)';
const TRUNCATED_GEN = `stale generation (${TRUNCATED})`;

/** Why `handle` names no live block (EBADF's reason), in the order of the checks; null when it does. */
function handleFault(arena: Arena, handle: unknown): string | null {
  // typeof first: comparing a non-number would convert it (a Symbol or a throwing valueOf throws a TypeError).
  if (typeof handle !== 'number') return 'not a handle';
  if (!Number.isSafeInteger(handle) || handle <= 0) return handle < 0 && handle >= -0x80000000 ? `not a handle (${TRUNCATED})` : 'not a handle';
  const i32 = arena.i32;
  const hw = (handle & HANDLE_OFFSET_MASK) * 2;
  if (hw < arena.heapStartW || hw >= Atomics.load(i32, L.H_HEAP_TOP) >>> 2) return 'out of the arena heap';
  if ((hw & 3) !== 0) return 'misaligned';
  const tag = i32[hw + B_TAG];
  const gen = i32[hw + B_GEN];
  if (gen >>> 24 !== selfCheck(hw) || (tag & TAG_CLASS_MASK) >= L.NCLASSES) return 'does not point at a block';
  if (((tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) !== STATE_LIVE) return FREED;
  if ((gen & GEN_MASK) === Math.floor(handle / HANDLE_OFFSET_SCALE)) return null;
  // A handle cut to 32 bits (an Int32Array/Uint32Array word) keeps the offset and loses the
  // generation's high bits: say so when the live block's own handle wraps to the same 32 bits.
  const own = (gen & GEN_MASK) * HANDLE_OFFSET_SCALE + (hw >>> 1);
  if (own > 0xffffffff && handle <= 0xffffffff && (own % 0x100000000 === handle || (own | 0) === (handle | 0))) return TRUNCATED_GEN;
  return REUSED;
}

/**
 * True when `handle` names a block of the arena that was freed since (and maybe reused): a handle
 * that went stale, as against a number that never was one (out of the heap, between blocks) — for
 * an API whose stale handles are an answer, not an error (Fence.withdraw). A generation that looks
 * cut to 32 bits counts as stale: a block reused a multiple of 8 times since wraps the same way.
 */
export function isStaleHandle(arena: Arena, handle: unknown): boolean {
  const why = handleFault(arena, handle);
  return why === FREED || why === REUSED || why === TRUNCATED_GEN;
}

/** Type of the block at header word `hw` (a {@link L.BlockType} value). */
export function blockTypeAt(i32: Int32Array, hw: number): number {
  return (i32[hw + B_TAG] >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK;
}

/** Byte size of the payload of the block at header word `hw`. */
export function payloadBytes(i32: Int32Array, hw: number): number {
  return L.SIZE_CLASSES[i32[hw + B_TAG] & TAG_CLASS_MASK] - L.BLOCK_HEADER_BYTES;
}

/** True when the block at `hw` is live with generation `gen`. */
export function isLive(i32: Int32Array, hw: number, gen: number): boolean {
  return ((i32[hw + B_TAG] >>> TAG_STATE_SHIFT) & TAG_STATE_MASK) === STATE_LIVE && (i32[hw + B_GEN] & GEN_MASK) === gen;
}
