/**
 * Statistics and the consistency check of an arena: walking the heap, the free lists, every
 * thread cache and the allocation counters. Slow by design (it walks everything); call it from
 * tests and tools, at quiescence.
 */
import type { Arena } from './arena.js';
import * as L from './layout.js';
import * as K from '../locks/layout.js';
import { runCheckHooks } from './hooks.js';
import { selfCheck } from './layout.js';

const { B_GEN, B_TAG, GEN_MASK, NO_THREAD, STATE_CACHED, STATE_FREE, STATE_LIVE, TAG_ALLOC_SHIFT, TAG_CLASS_MASK, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_THREAD_MASK, TAG_TYPE_MASK, TAG_TYPE_SHIFT } = L;

/** What {@link Arena.stats} returns: a walk of the heap plus every thread's counters. */
export interface ArenaStats {
  /** Bytes of the heap ({@link Arena.capacity}). */
  capacity: number;
  /** Bytes of live blocks, headers included. */
  used: number;
  /** Bytes held by size classes and thread caches (free, reusable for their size). */
  reserved: number;
  /** Live blocks by type name ('fence', 'callback', 'raw', …; see {@link BlockType}); types with none are left out. */
  live: Record<string, number>;
  /** Allocations since the arena was created, by every thread (reaped ones included). */
  allocs: number;
  /** Frees since the arena was created, by every thread (reaped ones included). */
  frees: number;
}

/** A live block {@link Arena.check} found (a leak when nothing should be live any more). */
export interface LeakReport {
  /** The block's handle. */
  ref: number;
  /** Its type name ('fence', 'raw', …; see {@link BlockType}). */
  type: string;
  /** Its size, header included. */
  bytes: number;
  /** Its generation (bumped on every free and reuse). */
  generation: number;
  /** Thread slot that allocated it. */
  allocatedBy: number;
}

/** What {@link Arena.check} returns. */
export interface CheckReport {
  /** True when the walk found no structural problem (headers, free lists, caches, counters). */
  ok: boolean;
  /** Bytes of live blocks (headers included) other than the arena's permanent ones. */
  leakedBytes: number;
  /** The live blocks (the first 1,000), other than the arena's permanent ones. */
  leaks: LeakReport[];
  /** What the walk found wrong, one sentence each (empty when `ok`). */
  problems: string[];
}

/** Thread slot in a header tag field, or -1 for "none". */
export function threadField(v: number): number {
  const t = v & TAG_THREAD_MASK;
  return t === NO_THREAD ? -1 : t;
}


export function arenaStats(arena: Arena): ArenaStats {
  const i32 = arena.i32;
  let allocs = i32[L.H_REAPED_ALLOCS];
  let frees = i32[L.H_REAPED_FREES];
  for (let s = 0; s < arena.maxThreads; s++) {
    const b = arena.slotWord(s);
    if (i32[b + L.T_STATE] === L.SLOT_FREE) continue;
    allocs += i32[b + L.T_ALLOCS];
    frees += i32[b + L.T_FREES];
  }
  // Live blocks by type come from the walk, so the hot paths keep no per-type counters.
  const liveByType = new Array<number>(L.NTYPES).fill(0);
  let used = 0;
  let reserved = 0;
  arena.walk((hw, size, state, type) => {
    if (state === STATE_LIVE) {
      used += size;
      liveByType[type]++;
    } else reserved += size;
  });
  const live: Record<string, number> = {};
  liveByType.forEach((c, t) => {
    if (c !== 0) live[L.BLOCK_TYPE_NAMES[t] ?? `type${t}`] = c;
  });
  return { capacity: arena.capacity, used, reserved, live, allocs, frees };
}


export function walkArena(arena: Arena, fn: (hw: number, size: number, state: number, type: number) => void): string | null {
  const i32 = arena.i32;
  const top = Atomics.load(i32, L.H_HEAP_TOP) >>> 2;
  for (let hw = arena.heapStartW; hw < top; ) {
    const tag = i32[hw + B_TAG];
    const cls = tag & TAG_CLASS_MASK;
    if (cls >= L.NCLASSES || i32[hw + B_GEN] >>> 24 !== selfCheck(hw))
      return `corrupt block header at byte ${hw * 4}: the heap cannot be walked past it`;
    const size = L.SIZE_CLASSES[cls];
    fn(hw, size, (tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK, (tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK);
    hw += size >>> 2;
  }
  return null;
}


export function checkArena(arena: Arena): CheckReport {
  const i32 = arena.i32;
  const problems: string[] = [];
  const leaks: LeakReport[] = [];
  let leakedBytes = 0;
  const states = new Map<number, number>();
  const liveByType = new Array<number>(L.NTYPES).fill(0);
  const layers = runCheckHooks(arena);
  problems.push(...layers.problems);
  const walkError = arena.walk((hw, size, state, type) => {
    states.set(hw, state);
    if (state === STATE_LIVE) {
      liveByType[type]++;
      const payload = hw + L.BLOCK_HEADER_WORDS;
      if (layers.permanent.has(payload)) return;
      const tag = i32[hw + B_TAG];
      leakedBytes += size;
      if (leaks.length < 1000)
        leaks.push({
          ref: arena.handleOf(hw),
          type: L.BLOCK_TYPE_NAMES[type] ?? String(type),
          bytes: size,
          generation: i32[hw + B_GEN] & GEN_MASK,
          allocatedBy: threadField(tag >>> TAG_ALLOC_SHIFT),
        });
    } else if (state !== STATE_FREE && state !== STATE_CACHED) {
      problems.push(`block at byte ${hw * 4} has invalid state ${state}`);
    }
  });
  if (walkError) problems.push(walkError);
  const seen = new Set<number>();
  for (let cls = 0; cls < L.NCLASSES; cls++) {
    const cl = L.H_CLASSES + cls * L.CL_STRIDE;
    if (i32[cl + L.CL_LOCK] & K.LOCK_OWNER_MASK) problems.push(`size class ${cls} lock is held`);
    let n = 0;
    for (let hw = i32[cl + L.CL_HEAD]; hw !== 0; hw = i32[hw + L.BLOCK_HEADER_WORDS]) {
      if (states.get(hw) !== STATE_FREE) {
        problems.push(`free list of class ${cls} links block at byte ${hw * 4} in state ${states.get(hw) ?? 'none'}`);
        break;
      }
      if ((i32[hw + B_TAG] & TAG_CLASS_MASK) !== cls) problems.push(`block at byte ${hw * 4} on the wrong free list`);
      if (seen.has(hw)) {
        problems.push(`block at byte ${hw * 4} appears twice in free lists`);
        break;
      }
      seen.add(hw);
      n++;
    }
    if (n !== i32[cl + L.CL_COUNT]) problems.push(`free list of class ${cls} holds ${n} blocks, count says ${i32[cl + L.CL_COUNT]}`);
  }
  for (let s = 0; s < arena.maxThreads; s++) {
    const b = arena.slotWord(s);
    if (i32[b + L.T_STATE] === L.SLOT_FREE) continue;
    for (let cls = 0; cls < L.NCLASSES; cls++) {
      const cb = b + L.T_CACHE + cls * L.CACHE_STRIDE;
      const n = i32[cb];
      if (n < 0 || n > L.CACHE_CAP) {
        problems.push(`thread ${s} cache of class ${cls} has count ${n}`);
        continue;
      }
      for (let j = 1; j <= n; j++) {
        const hw = i32[cb + j];
        if (states.get(hw) !== STATE_CACHED) problems.push(`thread ${s} caches block at byte ${hw * 4} in state ${states.get(hw) ?? 'none'}`);
        if (seen.has(hw)) problems.push(`block at byte ${hw * 4} is cached twice`);
        seen.add(hw);
      }
    }
  }
  for (const [hw, st] of states) if (st !== STATE_LIVE && !seen.has(hw)) problems.push(`free block at byte ${hw * 4} is on no list (lost)`);
  const { allocs, frees } = arena.stats();
  const liveCount = liveByType.reduce((a, b) => a + b, 0);
  if (allocs - frees !== liveCount) problems.push(`${allocs} allocations - ${frees} frees = ${allocs - frees}, but the walk found ${liveCount} live blocks`);
  const p = Atomics.load(i32, L.H_PROBLEMS);
  if (p) problems.push(`${p} freed block(s) were written after free (poison overwritten)`);
  return { ok: problems.length === 0, leakedBytes, leaks, problems };
}

