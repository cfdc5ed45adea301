/**
 * Unwrap and merge (kernel dma-fence-unwrap.c): iterate the plain fences inside containers
 * (chain → array → leaf) and merge several fences into one flat array of the unsignaled ones,
 * newest per context, sorted by context. `SyncFile.merge` is built on {@link mergeFences}.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { maxBlocks } from '../arena/handles.js';
import { Errors, describeValue, isArrayArg } from '../errors.js';
import { contextAlloc, fenceGet, seqnoLater, timestampOf } from '../fence/core.js';
import { Fence, fenceView } from '../fence/fence.js';
import { putFence } from '../fence/release.js';
import * as FL from '../fence/layout.js';
import { FenceArray, isArrayFw } from './array.js';
import { arrayChild, arrayCount } from './arraychildren.js';
import { chainWalk, containedFw } from './chain.js';
import { fenceArg, flushDeferred, isSignaledFw, ownFenceArg } from './common.js';

/**
 * Calls `visit(leaf)` for every plain fence inside `fw` (kernel dma_fence_unwrap_for_each): the
 * link's fence for every link of a chain (walking, so signaled links are garbage-collected),
 * every child of an array, or `fw` itself. A reference on the current link is held during
 * `visit`, so the leaf is alive then.
 */
export function forEachLeaf(arena: Arena, fw: number, visit: (leaf: number) => void): void {
  const i32 = arena.i32;
  fenceGet(i32, fw);
  let link = fw;
  // A chain has no more links than the heap has blocks: past that, a corrupted cycle.
  let hops = maxBlocks(arena);
  try {
    while (link !== 0) {
      if (hops-- === 0) throw Errors.corruptArena('a fence chain does not end');
      const c = containedFw(arena, link);
      if (isArrayFw(i32, c)) {
        const n = arrayCount(arena, c);
        for (let i = 0; i < n; i++) visit(arrayChild(arena, c, i));
      } else {
        visit(c);
      }
      const cur = link;
      link = 0; // chainWalk consumes the reference even when it throws part-way
      link = chainWalk(arena, cur);
    }
  } finally {
    if (link !== 0) putFence(arena, link);
  }
}

/**
 * The plain fences inside `f` (chain → array → leaf), in iteration order, as views without
 * references of their own: valid while `f` is held (a concurrent walk may still release a
 * signaled link and, with it, its fence). A plain fence unwraps to itself.
 * Threads: any. Throws EINVAL (not a Fence), EBADF (released).
 */
export function unwrapFences(f: Fence): Fence[] {
  const fw = ownFenceArg(f, 'fence');
  const arena = f.arena;
  flushDeferred(arena);
  const out: Fence[] = [];
  forEachLeaf(arena, fw, (leaf) => out.push(leaf === fw ? f : fenceView(arena, leaf)));
  return out;
}

/**
 * Merges `fences` (kernel dma_fence_unwrap_merge): unwraps them all and keeps the unsignaled
 * leaves. None left → a new private stub signaled with the latest timestamp seen; one → that
 * fence; otherwise a new {@link FenceArray} (new context, seqno 1) over them sorted by context
 * ascending, with only the latest fence of each context. The inputs are not consumed.
 * Threads: any. Returns a new reference the caller puts. Throws EINVAL (empty list, not Fences,
 * other arena), EBADF (released input), ENOMEM (no reference leaks on a throw).
 */
export function mergeFences(arena: Arena, fences: Fence[]): Fence {
  arenaArg(arena, 'mergeFences');
  const n = isArrayArg(fences) ? fences.length : 0;
  if (!Number.isSafeInteger(n) || n <= 0) throw Errors.invalid(`mergeFences needs a non-empty array of fences, got ${describeValue(fences)}`);
  const i32 = arena.i32;
  const heads = elementsOf(arena, fences, n, fences[0], 'mergeFences').map((f, i) => fenceArg(arena, f, `fences[${i}]`));
  flushDeferred(arena);
  const picked: number[] = [];
  let latest = 0n;
  try {
    for (const fw of heads) {
      forEachLeaf(arena, fw, (leaf) => {
        if (isSignaledFw(arena, leaf)) {
          const ts = timestampOf(arena, leaf);
          if (ts !== undefined && ts > latest) latest = ts;
        } else {
          fenceGet(i32, leaf); // alive: the walk holds its link
          picked.push(leaf);
        }
      });
    }
  } catch (e) {
    for (const x of picked) putFence(arena, x);
    throw e;
  }
  if (picked.length === 0) return Fence.privateStub(arena, latest);
  const kept = dedupFw(arena, picked);
  if (kept === 1) return fenceView(arena, picked[0]);
  try {
    return FenceArray.create(
      arena,
      picked.map((x) => fenceView(arena, x)),
      { context: contextAlloc(arena, 1), seqno: 1 },
    );
  } catch (e) {
    for (const x of picked) putFence(arena, x);
    throw e;
  }
}

/**
 * Sorts `fws` (payload words, one reference each) by context ascending and keeps the latest fence
 * of each context, putting the others; `fws` is shortened to the kept ones. Returns their count.
 */
function dedupFw(arena: Arena, fws: number[]): number {
  const i32 = arena.i32;
  // Context ascending; within a context the latest first, so the pass below keeps it.
  fws.sort((a, b) => {
    const d = i32[a + FL.F_CONTEXT] - i32[b + FL.F_CONTEXT];
    if (d !== 0) return d;
    if (seqnoLater(i32, a, b)) return -1;
    return seqnoLater(i32, b, a) ? 1 : 0;
  });
  let kept = 0;
  let first: unknown;
  let failed = false;
  for (let i = 0; i < fws.length; i++) {
    const x = fws[i];
    if (kept > 0 && i32[fws[kept - 1] + FL.F_CONTEXT] === i32[x + FL.F_CONTEXT]) {
      try {
        putFence(arena, x);
      } catch (e) {
        if (!failed) first = e;
        failed = true;
      }
    } else {
      fws[kept++] = x;
    }
  }
  fws.length = kept;
  if (failed) throw first;
  return kept;
}

/**
 * Deduplicates `fences` by context (kernel dma_fence_dedup_array): sorts them by context
 * ascending and keeps only the latest fence of each context; the caller's references on the
 * others are put. Takes over one reference per element, like the kernel's array of pointers.
 * Threads: any. Returns the kept fences (the same views), in context order. Throws EINVAL (not
 * Fences of one arena), EBADF (a released fence) before anything is put.
 */
export function dedupArray(fences: Fence[]): Fence[] {
  const n = isArrayArg(fences) ? fences.length : -1;
  if (!Number.isSafeInteger(n) || n < 0) throw Errors.invalid(`dedupArray needs an array of fences, got ${describeValue(fences)}`);
  if (n === 0) return [];
  const first = fences[0];
  ownFenceArg(first, 'fences[0]');
  const arena = first.arena;
  const list = elementsOf(arena, fences, n, first, 'dedupArray');
  const fws = list.map((f, i) => fenceArg(arena, f, `fences[${i}]`));
  const byFw = new Map<number, Fence>();
  list.forEach((f, i) => byFw.set(fws[i], f as Fence));
  dedupFw(arena, fws);
  return fws.map((fw) => byFw.get(fw)!);
}

/**
 * The `n` elements of the caller's array `fences` (`first`: element 0, read already), each read
 * once and by index: no method of the array runs (an own `map` is the caller's code, a hole is an
 * element that is no Fence), and all are read before any is checked, so that a getter of the
 * caller's cannot release an element already checked. Throws EINVAL when `n` is more fences than
 * `arena` can hold (a length no array of fences has).
 */
function elementsOf(arena: Arena, fences: Fence[], n: number, first: unknown, where: string): unknown[] {
  if (n > maxBlocks(arena)) throw Errors.invalid(`${where}: ${n} fences, more than the arena can hold`);
  const list = new Array<unknown>(n);
  list[0] = first;
  for (let i = 1; i < n; i++) list[i] = fences[i];
  return list;
}
