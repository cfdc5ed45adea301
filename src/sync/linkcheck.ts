/**
 * The sync layer's part of {@link Arena.check} for corrupted links: the fence and name words of
 * every open fd table entry, every sw_sync point's timeline word, and every timeline's point list
 * (walked bounded by the most blocks the heap can hold) are checked, so a stray write there is a
 * reported problem rather than a RangeError or a stray write on the next close, signal or put.
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload, maxBlocks } from '../arena/handles.js';
import { onCheck } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { swSyncOps } from './points.js';

const { FD_STATE, FD_FENCE, FD_NAME, FD_STRIDE, FDS_LIVE, FDS_STATE_MASK, PT_TIMELINE, PT_PREV, PT_NEXT, TL_HEAD, TL_TAIL } = L;
const { BLOCK_HEADER_WORDS, BlockType } = A;

/** What is wrong with the open entries of the fd table (one sentence each). */
function fdTableProblems(arena: Arena): string[] {
  const i32 = arena.i32;
  const problems: string[] = [];
  const cap = i32[A.H_TABLE_ENTRIES];
  const table = i32[A.H_TABLE];
  for (let index = 0; index < cap; index++) {
    const e = table + index * FD_STRIDE;
    // A LIVE entry without a fence is half closed (see fdtable.ts finishHalfClosed), not corrupted.
    if ((Atomics.load(i32, e + FD_STATE) & FDS_STATE_MASK) !== FDS_LIVE || i32[e + FD_FENCE] === 0) continue;
    if (!isLinkedPayload(arena, i32[e + FD_FENCE], BlockType.FENCE)) problems.push(`fd table entry ${index} names byte ${i32[e + FD_FENCE] * 4} as its fence, no live fence`);
    const nameW = i32[e + FD_NAME];
    if (nameW !== 0 && !isLinkedPayload(arena, nameW, BlockType.SYNC_FILE)) problems.push(`fd table entry ${index} names byte ${nameW * 4} as its name, no live name block`);
  }
  return problems;
}

/** What is wrong with the point list of timeline `tw` (each point naming it, back links matching, the tail the last one), or null. */
function pointListProblem(arena: Arena, tw: number, hops: number): string | null {
  const i32 = arena.i32;
  let prev = 0;
  for (let p = i32[tw + TL_HEAD]; p !== 0; p = i32[p + PT_NEXT]) {
    if (hops-- === 0) return `the point list of timeline @${tw * 4} does not end`;
    if (!isLinkedPayload(arena, p, BlockType.FENCE) || i32[p + FL.F_OPS] !== swSyncOps.id) return `the point list of timeline @${tw * 4} links byte ${p * 4}, no live sw_sync point`;
    if (i32[p + PT_TIMELINE] !== tw || i32[p + PT_PREV] !== prev) return `point @${p * 4} in the list of timeline @${tw * 4} names timeline @${i32[p + PT_TIMELINE] * 4}, previous @${i32[p + PT_PREV] * 4}`;
    prev = p;
  }
  return i32[tw + TL_TAIL] === prev ? null : `the point tail of timeline @${tw * 4} names byte ${i32[tw + TL_TAIL] * 4}, not its last point`;
}

onCheck((arena) => {
  const i32 = arena.i32;
  const problems = fdTableProblems(arena);
  const hops = maxBlocks(arena);
  arena.walk((hw, _size, state, type) => {
    if (state !== A.STATE_LIVE || problems.length >= 100) return;
    const pw = hw + BLOCK_HEADER_WORDS;
    if (type === BlockType.TIMELINE) {
      const p = pointListProblem(arena, pw, hops);
      if (p !== null) problems.push(p);
    } else if (type === BlockType.FENCE && i32[pw + FL.F_OPS] === swSyncOps.id && !isLinkedPayload(arena, i32[pw + PT_TIMELINE], BlockType.TIMELINE)) {
      problems.push(`sw_sync point @${pw * 4} names byte ${i32[pw + PT_TIMELINE] * 4} as its timeline, no live timeline`);
    }
  });
  return { problems };
});
