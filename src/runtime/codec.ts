/**
 * Values that travel through the arena: a task's envelope (payload, task name, input keys) and its
 * result or thrown error, encoded into a block so that whichever pool worker runs the job — or
 * reads its result as an input — finds them in shared memory, with no message through the main
 * thread.
 *
 * Plain data (null, booleans, finite numbers, strings, arrays and plain objects of those) goes as
 * UTF-8 JSON: encoding and decoding cost well under a microsecond for small values, where
 * `v8.serialize` costs several. Anything else goes through `v8.serialize` (structured clone: Map,
 * Set, Date, typed arrays, errors, cycles). What neither can carry — functions, SharedArrayBuffers
 * (a buffer cannot live inside another), transferables — is refused with EINVAL: share buffers
 * through the pool's `workerData` or the arena instead.
 */
import { deserialize, serialize } from 'node:v8';
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import { Errno, Errors, FenceError, describeValue, type ErrnoCode } from '../errors.js';
import { CODEC_FENCE_ERROR, CODEC_JSON, CODEC_NONE, CODEC_THROWN, CODEC_V8 } from './layout.js';

/** An encoded value before it is stored: its codec and bytes (none for `undefined`). */
export interface Encoded {
  kind: number;
  json: string | null;
  bytes: Uint8Array | null;
  length: number;
}

/** Deepest nesting the JSON path checks; deeper (or cyclic) values take the v8 path. */
const MAX_DEPTH = 32;

/** True when JSON round-trips `v` exactly (no undefined members, no -0, NaN, holes, toJSON…). */
function isPlain(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0);
    case 'object': {
      if (v === null) return true;
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!(i in v) || !isPlain(v[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
      for (const k in v) if (!isPlain((v as Record<string, unknown>)[k], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/** Encodes `v`. Throws EINVAL (with `what` in the message) for a value no codec can carry. */
export function encode(v: unknown, what: string): Encoded {
  if (v === undefined) return { kind: CODEC_NONE, json: null, bytes: null, length: 0 };
  if (isPlain(v, 0)) {
    const json = JSON.stringify(v);
    return { kind: CODEC_JSON, json, bytes: null, length: Buffer.byteLength(json, 'utf8') };
  }
  let bytes: Uint8Array;
  try {
    bytes = serialize(v);
  } catch (e) {
    throw Errors.invalid(`${what} cannot travel through shared memory (${(e as Error).message}); share buffers through workerData or the arena`);
  }
  return { kind: CODEC_V8, json: null, bytes, length: bytes.length };
}

/**
 * Stores an encoded value in a new block and returns its payload word index (0 for none). With
 * `at` (≠ 0) the word is also written to `i32[at]` in the allocation's run, before the bytes: a
 * thread terminated while it copies them leaves the block recorded there, not leaked.
 * Threads: any attached thread. Throws ENOMEM (nothing allocated).
 */
export function store(arena: Arena, e: Encoded, at = 0): number {
  if (e.kind === CODEC_NONE) return 0;
  const hw = arena.allocBlock(e.length + A.BLOCK_HEADER_BYTES, A.BlockType.INTERNAL);
  if (at !== 0) arena.i32[at] = hw + A.BLOCK_HEADER_WORDS;
  const byte = (hw + A.BLOCK_HEADER_WORDS) * 4;
  if (e.json !== null) Buffer.from(arena.buffer, byte, e.length).write(e.json, 'utf8');
  else new Uint8Array(arena.buffer, byte, e.length).set(e.bytes!);
  return hw + A.BLOCK_HEADER_WORDS;
}

/** Decodes `length` bytes of codec `kind` stored at payload word `w`. */
export function load(arena: Arena, kind: number, w: number, length: number): unknown {
  if (kind === CODEC_NONE || w === 0) return undefined;
  if (kind === CODEC_JSON) return JSON.parse(Buffer.from(arena.buffer, w * 4, length).toString('utf8'));
  // v8.deserialize reads the view; copying first keeps the decoded value off shared memory.
  return deserialize(new Uint8Array(arena.buffer, w * 4, length).slice());
}

/** Frees a block from {@link store} (no-op for 0). */
export function drop(arena: Arena, w: number): void {
  if (w !== 0) arena.freeBlock(w - A.BLOCK_HEADER_WORDS);
}

/**
 * What a task threw, encoded (kind flagged CODEC_THROWN). A FenceError travels as its code and
 * message (flag CODEC_FENCE_ERROR): v8.serialize would make it a plain Error, without its class or
 * code. Something that cannot travel becomes an Error with its message, or — no message to read
 * either (a null-prototype object holding a function, a throwing getter, a revoked Proxy) — with
 * a description of the value. Never throws: the pull loop calls it in its catch, and a throw there
 * left the job RUNNING for good (its fence never signaled, the loop counted as busy, so no other
 * job of a one-loop pool started either). Threads: pool workers.
 */
export function encodeThrown(e: unknown): Encoded {
  let enc: Encoded;
  try {
    enc = encodeThrownValue(e);
  } catch {
    enc = encode(new Error(`the task threw ${describeValue(e)}, which cannot travel through shared memory`), 'thrown value');
  }
  enc.kind |= CODEC_THROWN;
  return enc;
}

/** {@link encodeThrown} without its last resort: throws what reading `e` throws. */
function encodeThrownValue(e: unknown): Encoded {
  if (e instanceof FenceError) {
    const prefix = `${e.code}: `;
    const enc = encode([e.code, e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message], 'thrown value');
    enc.kind |= CODEC_FENCE_ERROR;
    return enc;
  }
  try {
    return encode(e, 'thrown value');
  } catch {
    return encode(new Error(String((e as Error)?.message ?? e)), 'thrown value');
  }
}

/**
 * Decodes a job's result of `kind` stored at payload word `w` (see {@link load}): `thrown` when the
 * task threw, `value` what it returned or threw — a FenceError rebuilt with its code. Threads: any.
 */
export function loadResult(arena: Arena, kind: number, w: number, length: number): { thrown: boolean; value: unknown } {
  const value = load(arena, kind & ~(CODEC_THROWN | CODEC_FENCE_ERROR), w, length);
  if ((kind & CODEC_FENCE_ERROR) === 0) return { thrown: (kind & CODEC_THROWN) !== 0, value };
  const [code, message] = value as [string, string];
  return { thrown: true, value: new FenceError(Object.hasOwn(Errno, code) ? (code as ErrnoCode) : 'EIO', message) };
}
