/**
 * The containers' part of {@link Arena.check} for corrupted links: every fence array's child list
 * (its block, its count, each child a live fence) and every chain link (its fence and predecessor
 * live fences, the predecessors ending without a cycle), so a stray write there is a reported
 * problem rather than a hang or a stray put on the next signal, walk or release.
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload } from '../arena/handles.js';
import { onCheck } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import { F_REFCOUNT } from '../fence/layout.js';
import { isArrayFw } from './array.js';
import { arrayChild, arrayCount } from './arraychildren.js';
import { isChainFw } from './chain.js';
import * as L from './layout.js';

const { BLOCK_HEADER_WORDS, BlockType } = A;

/** What is wrong with fence array `fw`'s children, or null (arrayCount and arrayChild throw on it). */
function arrayProblem(arena: Arena, fw: number): string | null {
  try {
    const n = arrayCount(arena, fw);
    for (let i = 0; i < n; i++) arrayChild(arena, fw, i);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * What is wrong with chain link `fw`, or null: its fence and predecessor must be live fences, and
 * following predecessors from it must end (`done`: links already known to end; each walk marks
 * what it passed, so the check is linear in the number of links).
 */
function chainProblem(arena: Arena, fw: number, done: Set<number>): string | null {
  const i32 = arena.i32;
  if (!isLinkedPayload(arena, i32[fw + L.C_FENCE], BlockType.FENCE)) return `chain link @${fw * 4} names byte ${i32[fw + L.C_FENCE] * 4} as its fence, no live fence`;
  const path = new Set<number>();
  for (let f = fw; f !== 0 && isChainFw(i32, f) && !done.has(f); f = i32[f + L.C_PREV]) {
    if (path.has(f)) return `the predecessors of chain link @${fw * 4} make a cycle through @${f * 4}`;
    path.add(f);
    const p = i32[f + L.C_PREV];
    if (p !== 0 && !isLinkedPayload(arena, p, BlockType.FENCE)) return `chain link @${f * 4} names byte ${p * 4} as its predecessor, no live fence`;
  }
  for (const f of path) done.add(f);
  return null;
}

onCheck((arena) => {
  const i32 = arena.i32;
  const problems: string[] = [];
  const done = new Set<number>();
  arena.walk((hw, _size, state, type) => {
    if (state !== A.STATE_LIVE || type !== BlockType.FENCE || problems.length >= 100) return;
    const fw = hw + BLOCK_HEADER_WORDS;
    // A container whose release is in flight (no reference left) has its words cleared as its
    // drops go (see putChildAt): nothing to check until its block is freed.
    if (i32[fw + F_REFCOUNT] === 0) return;
    const p = isArrayFw(i32, fw) ? arrayProblem(arena, fw) : isChainFw(i32, fw) ? chainProblem(arena, fw, done) : null;
    if (p !== null) problems.push(p);
  });
  return { problems };
});
