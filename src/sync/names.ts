/**
 * Names of sync files and timelines in shared memory: `[byte length, UTF-8 bytes…]` at a word
 * index, at most NAME_MAX_BYTES bytes (the kernel's `char name[32]` with its NUL). Longer names are
 * cut on a character boundary, like `strscpy` cuts on a byte boundary.
 */
import type { Arena } from '../arena/arena.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const scratch = new Uint8Array(L.NAME_MAX_BYTES);

/** Throws EINVAL unless `name` is undefined or a string. */
export function checkName(name: unknown, what: string): asserts name is string | undefined {
  if (name !== undefined && typeof name !== 'string') throw Errors.invalid(`${what} name must be a string, got ${typeof name}`);
}

/**
 * Writes `name` (cut to NAME_MAX_BYTES UTF-8 bytes) at word `w`: NAME_WORDS words.
 * Threads: any; the caller owns the words (a fresh block, or a struct not yet published).
 */
export function writeName(arena: Arena, w: number, name: string): void {
  // encodeInto writes whole characters only: a name is never cut inside a multi-byte sequence.
  const { written } = encoder.encodeInto(name, scratch);
  arena.i32[w + L.NM_LEN] = written;
  new Uint8Array(arena.buffer, (w + L.NM_BYTES) * 4, L.NAME_MAX_BYTES).set(scratch.subarray(0, written));
}

/** Reads the name at word `w` (see {@link writeName}). */
export function readName(arena: Arena, w: number): string {
  const n = Math.min(Math.max(arena.i32[w + L.NM_LEN], 0), L.NAME_MAX_BYTES);
  if (n === 0) return '';
  // slice() copies into an unshared buffer: TextDecoder refuses views of a SharedArrayBuffer.
  return decoder.decode(new Uint8Array(arena.buffer, (w + L.NM_BYTES) * 4, n).slice());
}
