/**
 * The public alloc's and free's out-of-line cases (Arena.alloc, Arena.free): a large block, and
 * every argument check with its message. Kept apart from the facade so the inline paths stay small.
 */
import { describeValue, Errors } from '../errors.js';
import type { Arena } from './arena.js';
import { allocBlock, FREEABLE_TYPES, freeBlock, zeroPayload } from './alloc.js';
import { blockTypeAt, handleOf, resolve } from './handles.js';
import { heldWords } from './hooks.js';
import * as L from './layout.js';

/**
 * alloc's every case but a small raw block: a large one, or bad arguments (EINVAL). Out of line,
 * so that the public alloc stays small enough to inline whole into its callers.
 */
export function allocLarge(arena: Arena, bytes: unknown, type: unknown): number {
  if (!Number.isInteger(bytes) || (bytes as number) <= 0 || (bytes as number) > L.MAX_ARENA_BYTES)
    throw Errors.invalid(`alloc size must be a positive integer ≤ ${L.MAX_ARENA_BYTES}, got ${describeValue(bytes)}`);
  // Only raw blocks: a typed block made here (a zeroed "fence") would pass every typed entry's
  // check while holding none of its invariants.
  if (type !== L.BlockType.RAW)
    throw Errors.invalid(
      `arena.alloc makes raw blocks only (BlockType.RAW); got block type ${describeValue(type)}: typed blocks are made by their own API (Fence.create, SpinLock.create, Driver.submit)`,
    );
  const hw = allocBlock(arena, (bytes as number) + L.BLOCK_HEADER_BYTES, L.BlockType.RAW);
  zeroPayload(arena, hw);
  return handleOf(arena.i32, hw);
}

/**
 * free's every case the fast path (freeRaw) declines: validates `ref` (EBADF for a stale, freed or
 * forged handle, EINVAL for a block with a lifetime of its own), then frees with every check of
 * freeBlock (a full cache flushed, the sanitizer's poison and double-free compare-exchange).
 */
export function freeChecked(arena: Arena, ref: number): void {
  const hw = resolve(arena, ref, -1, 'block');
  const type = blockTypeAt(arena.i32, hw);
  if (((1 << type) & FREEABLE_TYPES) === 0)
    throw Errors.invalid(
      `arena.free: handle ${ref} is a ${L.BLOCK_TYPE_NAMES[type] ?? type} block, released through its own API (put, close, the driver's end of an operation)`,
    );
  const held = heldWords.find(arena, hw);
  if (held >= 0) throw Errors.busy(`arena.free: the calling thread holds the lock word @${held * 4} in block ${ref}: unlock it first`);
  freeBlock(arena, hw);
}
