/**
 * What a kill test's kills hit in the chain walk records (src/containers/chainwalk.ts): read by a
 * reap hook that runs before the CHAIN_WALKS stage drops the walks' references, so it sees the
 * records as the dead thread left them.
 */
import type { Arena } from '../../src/index.js';
import { onReap, ReapStage } from '../../src/arena/hooks.js';
import { walkRecords } from '../../src/containers/chainwalk.js';
import * as CL from '../../src/containers/layout.js';

/** Kills inside a chain walk (a record in use); of those, the ones whose records still named references; those references; kills in a walk nested deeper than WALK_CAP. */
export interface WalkHits {
  inWalk: number;
  holding: number;
  refs: number;
  deep: number;
}

/** Counters filled by every reap of a dead thread from now on (reset them per test). */
export function countWalkHits(): WalkHits {
  const hits: WalkHits = { inWalk: 0, holding: 0, refs: 0, deep: 0 };
  onReap(ReapStage.CALLBACKS, (arena: Arena, slot: number) => {
    if (slot === arena.slot) return;
    const i32 = arena.i32;
    const b = arena.slotWord(slot);
    const depth = i32[b + CL.T_WALK_DEPTH];
    if (!(depth > 0)) return;
    hits.inWalk++;
    if (depth > CL.WALK_CAP) hits.deep++;
    let refs = 0;
    for (const rec of walkRecords(arena, slot)) {
      for (const w of [CL.W_LINK, CL.W_PREV, CL.W_AUX]) if (i32[rec + w] !== 0) refs++;
    }
    if (refs > 0) hits.holding++;
    hits.refs += refs;
  });
  return hits;
}
