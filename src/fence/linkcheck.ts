/**
 * The fence layer's part of {@link Arena.check} for corrupted links: every live fence's callback
 * list is walked (bounded by the most blocks the heap can hold) and each link read from shared
 * memory is checked, so a stray write there is a reported problem rather than a hang or a
 * RangeError on the next signal. (The ledgers' check is in ledger.ts.)
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload, maxBlocks } from '../arena/handles.js';
import { onCheck } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';

const { CB_FENCE, CB_NEXT, CB_PREV, F_CB_HEAD, F_CB_TAIL, F_FLAGS, FLAG_SIGNALED } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * What is wrong with the callback list of unsignaled fence `fw` (a signaled one's list was detached
 * and may be running): every node a live callback block naming `fw`, back links matching, the
 * tail word naming the last node, the list ending within `hops` nodes.
 */
function callbackListProblem(arena: Arena, fw: number, hops: number): string | null {
  const i32 = arena.i32;
  if (i32[fw + F_FLAGS] & FLAG_SIGNALED) return null;
  let prev = 0;
  for (let nw = i32[fw + F_CB_HEAD]; nw !== 0; nw = i32[nw + CB_NEXT]) {
    if (hops-- === 0) return `the callback list of fence @${fw * 4} does not end`;
    if (!isLinkedPayload(arena, nw, A.BlockType.CALLBACK)) return `the callback list of fence @${fw * 4} links byte ${nw * 4}, no live callback node`;
    if (i32[nw + CB_FENCE] !== fw || i32[nw + CB_PREV] !== prev) return `callback node @${nw * 4} in the list of fence @${fw * 4} names fence @${i32[nw + CB_FENCE] * 4}, previous @${i32[nw + CB_PREV] * 4}`;
    prev = nw;
  }
  return i32[fw + F_CB_TAIL] === prev ? null : `the callback tail of fence @${fw * 4} names byte ${i32[fw + F_CB_TAIL] * 4}, not its last node`;
}

onCheck((arena) => {
  const problems: string[] = [];
  const hops = maxBlocks(arena);
  arena.walk((hw, _size, state, type) => {
    if (state !== A.STATE_LIVE || type !== A.BlockType.FENCE || problems.length >= 100) return;
    const p = callbackListProblem(arena, hw + BLOCK_HEADER_WORDS, hops);
    if (p !== null) problems.push(p);
  });
  return { problems };
});
