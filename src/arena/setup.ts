/**
 * Setting up an arena's header: Arena.create's option checks and header initialisation, and
 * Arena.attach's checks of a buffer it is handed (magic, layout version, the header words a view
 * trusts).
 */
import { describeValue, Errors, optionsArg, isInstance } from '../errors.js';
import * as K from '../locks/layout.js';
import type { ArenaOptions } from './arena.js';
import * as L from './layout.js';

/**
 * What is wrong with the header words a view trusts (lock kind, thread table, heap bounds), or
 * null: a corrupted header is refused at attach, not followed into a hang or a RangeError.
 */
function headerError(i32: Int32Array): string | null {
  const kind = i32[L.H_LOCK_KIND];
  if (kind < 0 || kind >= K.LOCK_KINDS.length) return `lock kind ${kind}`;
  const maxThreads = i32[L.H_MAX_THREADS];
  if (maxThreads < 1 || maxThreads > L.MAX_THREADS_LIMIT) return `maxThreads ${maxThreads}`;
  const start = i32[L.H_HEAP_START];
  const end = i32[L.H_HEAP_END];
  if (start <= 0 || start % 64 !== 0 || end !== i32[L.H_BYTES] || start >= end) return `heap ${start}..${end}`;
  const top = Atomics.load(i32, L.H_HEAP_TOP);
  if (top < start || top > end) return `heap top ${top}`;
  return null;
}

/**
 * An options argument of the Arena's entries: {@link optionsArg}'s checks (an object, no unknown
 * key), and no option given as `null` — `undefined` (or leaving it out) means the default, `null`
 * is a mistake rather than a silent default. Throws FenceError EINVAL naming `where` and the option.
 */
export function arenaOptionsArg<T extends object>(options: T | undefined, where: string, known: readonly (keyof T & string)[]): T {
  const o = optionsArg(options, where, known);
  for (const key of known)
    if ((o as Record<string, unknown>)[key] === null) throw Errors.invalid(`${where}: option ${key} is null (leave it out, or undefined, for the default)`);
  return o;
}

/**
 * What `arena.adopt`'s options ask: true for `{ keep: true }` (the arena's), false for the calling
 * thread's. Throws EINVAL for options that are not an object, an unknown key, a null or non-boolean `keep`.
 */
export function adoptKeepArg(options: unknown): boolean {
  const keep: unknown = arenaOptionsArg(options as { keep?: boolean } | undefined, 'arena.adopt', ['keep']).keep;
  if (keep !== undefined && typeof keep !== 'boolean') throw Errors.invalid(`arena.adopt: keep must be a boolean, got ${describeValue(keep)}`);
  return keep === true;
}

/**
 * A new arena's buffer, its header initialised from `options` (Arena.create).
 * Throws FenceError EINVAL for impossible options (an option given as null among them).
 */
export function createBuffer(options?: ArenaOptions): SharedArrayBuffer {
  options = arenaOptionsArg(options, 'Arena.create', ['bytes', 'lockKind', 'sanitize', 'maxThreads', 'maxFds']);
  const bytes = options.bytes ?? 32 * 1024 * 1024;
  const maxThreads = options.maxThreads ?? 64;
  const maxFds = options.maxFds ?? 4096;
  const kind = K.LOCK_KINDS.indexOf(options.lockKind ?? 'futex');
  if (kind < 0) throw Errors.invalid(`unknown lock kind ${describeValue(options.lockKind)} (one of ${K.LOCK_KINDS.join(', ')})`);
  if (!Number.isInteger(maxThreads) || maxThreads < 1 || maxThreads > L.MAX_THREADS_LIMIT)
    throw Errors.invalid(`maxThreads must be an integer in 1..${L.MAX_THREADS_LIMIT}, got ${describeValue(maxThreads)}`);
  if (!Number.isInteger(maxFds) || maxFds < 1 || maxFds > 1 << 20)
    throw Errors.invalid(`maxFds must be an integer in 1..${1 << 20}, got ${describeValue(maxFds)}`);
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes > L.MAX_ARENA_BYTES)
    throw Errors.invalid(`bytes must be a positive integer ≤ ${L.MAX_ARENA_BYTES}, got ${describeValue(bytes)}`);
  const sanitizeOpt: unknown = options.sanitize;
  if (sanitizeOpt !== undefined && typeof sanitizeOpt !== 'boolean' && sanitizeOpt !== 'count')
    throw Errors.invalid(`sanitize must be true, false or 'count', got ${describeValue(sanitizeOpt)}`);
  const tableW = 256;
  const fdW = tableW + maxThreads * L.THREAD_STRIDE;
  const sanitize = options.sanitize ?? false;
  // A sanitizing arena keeps the lock-order checker's graph between the fd table and the heap.
  const heapStart = Math.ceil(((fdW + maxFds * L.TABLE_ENTRY_WORDS) * 4) / 64) * 64 + (sanitize ? L.SANITIZER_AREA_BYTES : 0);
  const size = Math.floor(bytes / 64) * 64;
  if (heapStart + 4096 > size)
    throw Errors.invalid(`bytes ${bytes} too small for ${maxThreads} threads and ${maxFds} fds (need > ${heapStart + 4096})`);
  const buffer = new SharedArrayBuffer(size);
  const i32 = new Int32Array(buffer);
  i32[L.H_MAGIC] = L.MAGIC;
  i32[L.H_VERSION] = L.LAYOUT_VERSION;
  i32[L.H_BYTES] = size;
  i32[L.H_LOCK_KIND] = kind;
  i32[L.H_FLAGS] = (sanitize ? L.ARENA_SANITIZE : 0) | (sanitize === 'count' ? L.ARENA_COUNT : 0);
  i32[L.H_MAX_THREADS] = maxThreads;
  i32[L.H_HEAP_START] = heapStart;
  i32[L.H_HEAP_TOP] = heapStart;
  i32[L.H_HEAP_END] = size;
  i32[L.H_THREAD_TABLE] = tableW;
  i32[L.H_THREAD_STRIDE] = L.THREAD_STRIDE;
  i32[L.H_TABLE] = fdW;
  i32[L.H_TABLE_ENTRIES] = maxFds;
  i32[L.H_ARENA_ID] = (Math.random() * 0x7fffffff) | 0 || 1;
  return buffer;
}

/**
 * The words of `buffer` once it is known to be a fencelab arena of this layout version with a
 * sound header (Arena.attach). Throws EINVAL otherwise.
 */
export function attachedWords(buffer: SharedArrayBuffer): Int32Array {
  if (!isInstance(buffer, SharedArrayBuffer) || buffer.byteLength < 4096)
    throw Errors.invalid('not a fencelab arena: expected a SharedArrayBuffer from Arena.create');
  const i32 = new Int32Array(buffer);
  if (i32[L.H_MAGIC] !== L.MAGIC) throw Errors.invalid('not a fencelab arena (bad magic)');
  if (i32[L.H_VERSION] !== L.LAYOUT_VERSION)
    throw Errors.invalid(`arena layout version ${i32[L.H_VERSION]}, this fencelab reads version ${L.LAYOUT_VERSION}`);
  if (i32[L.H_BYTES] !== buffer.byteLength) throw Errors.invalid('arena header size does not match the buffer');
  const headerProblem = headerError(i32);
  if (headerProblem !== null) throw Errors.invalid(`corrupted arena header: ${headerProblem}`);
  return i32;
}
