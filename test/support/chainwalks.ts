/**
 * What a kill test's kills hit in the chain walk records (src/containers/chainwalk.ts): read by a
 * reap hook that runs before the CHAIN_WALKS stage drops the walks' references, so it sees the
 * records as the dead thread left them.
 */
import type { Arena } from '../../src/index.js';
import { onReap, ReapStage } from '../../src/arena/hooks.js';
import * as CL from '../../src/containers/layout.js';

/** Kills inside a chain walk (a record in use); of those, the ones whose records still named references; those references. */
export interface WalkHits {
  inWalk: number;
  holding: number;
  refs: number;
}

/** Counters filled by every reap of a dead thread from now on (reset them per test). */
export function countWalkHits(): WalkHits {
  const hits: WalkHits = { inWalk: 0, holding: 0, refs: 0 };
  onReap(ReapStage.CALLBACKS, (arena: Arena, slot: number) => {
    if (slot === arena.slot) return;
    const i32 = arena.i32;
    const b = arena.slotWord(slot);
    const depth = i32[b + CL.T_WALK_DEPTH];
    if (!(depth > 0)) return;
    hits.inWalk++;
    let refs = 0;
    for (let d = 0; d < Math.min(depth, CL.WALK_CAP); d++) {
      const rec = b + CL.T_WALK + d * CL.W_WORDS;
      for (const w of [CL.W_LINK, CL.W_PREV, CL.W_AUX]) if (i32[rec + w] !== 0) refs++;
    }
    if (refs > 0) hits.holding++;
    hits.refs += refs;
  });
  return hits;
}
