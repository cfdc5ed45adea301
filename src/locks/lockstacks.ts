/**
 * The lock-order checker's call sites (src/locks/lockdep.ts): captured once per new order, kept in
 * the sanitizer area's shared stack store (UTF-16, `LD_STACKS`) so that a report made in one thread
 * shows the call site another thread recorded for the other side of the inversion.
 */
import type { Arena } from '../arena/arena.js';
import * as L from './layout.js';

const { LE_STACK, LE_STACK_LEN } = L;
/** Frames kept per call site. */
const STACK_FRAMES = 12;

/** Where a thread keeps its view of the stack store (made on first use). */
export interface StackCache {
  stacks: Uint16Array | undefined;
}

/** The caller's call site: the stack from the first frame outside the lock code. */
export function callSite(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(1);
  let first = 0;
  while (first < lines.length - 1 && /[\\/](locks[\\/](lockdep|lockstacks|spinlock)|fence[\\/](core|fence|fencebase|lock))\.[jt]s/.test(lines[first])) first++;
  return lines.slice(first, first + STACK_FRAMES).map((l) => l.trim()).join('\n');
}

function stackView(arena: Arena, s: StackCache): Uint16Array {
  if (s.stacks === undefined) s.stacks = new Uint16Array(arena.buffer, (arena.sanitizerArea + L.LD_STACKS) * 4, L.LD_STACK_STORE_CHARS);
  return s.stacks;
}

/** Keeps `stack` in the shared stack store for edge entry `e` (none when the store is full). */
export function storeStack(arena: Arena, s: StackCache, e: number, stack: string): void {
  const i32 = arena.i32;
  const len = Math.min(stack.length, L.LD_STACK_CHARS);
  const at = Atomics.add(i32, arena.sanitizerArea + L.LD_STACK_TOP, len);
  if (at + len > L.LD_STACK_STORE_CHARS) return;
  const u16 = stackView(arena, s);
  for (let k = 0; k < len; k++) u16[at + k] = stack.charCodeAt(k);
  Atomics.store(i32, e + LE_STACK, at);
  Atomics.store(i32, e + LE_STACK_LEN, len);
}

export function loadStack(arena: Arena, s: StackCache, e: number): string {
  const len = Atomics.load(arena.i32, e + LE_STACK_LEN);
  if (len === 0) return '(call site not kept: the stack store is full)';
  const at = Atomics.load(arena.i32, e + LE_STACK);
  const u16 = stackView(arena, s);
  let out = '';
  for (let k = 0; k < len; k += 4096) out += String.fromCharCode(...u16.subarray(at + k, at + Math.min(len, k + 4096)));
  return out;
}
