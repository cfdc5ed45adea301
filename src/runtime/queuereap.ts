/**
 * The pool scheduler's pull loops of a dead worker (queue.ts keeps their counts in the thread slot):
 * a reap hook registered at load by finish.ts (before its own), which every thread of a pool loads.
 */
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { lockSched, schedOwner, unlockSched } from './queue.js';

const { BLOCK_HEADER_WORDS } = A;
const { S_PULLERS, S_LOOKING, S_SLEEPING, S_BELL } = L;

/**
 * Reap hook: a dead thread's pull loops leave the scheduler's counts (else the main thread would
 * wait for loops that will never take a job), and the owner is asked to make up for them.
 */
onReap(ReapStage.DISPATCH, (arena, slot) => {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const sw = i32[b + L.T_PULL_SCHED];
  if (sw === 0 || slot === arena.slot) return;
  i32[b + L.T_PULL_SCHED] = 0;
  if (!arena.isLive(sw - BLOCK_HEADER_WORDS, i32[b + L.T_PULL_GEN])) return;
  lockSched(arena, sw);
  i32[sw + S_PULLERS] -= i32[b + L.T_PULL_LOOPS];
  i32[sw + S_LOOKING] -= i32[b + L.T_PULL_LOOKING];
  i32[sw + S_SLEEPING] -= i32[b + L.T_PULL_SLEEPING];
  unlockSched(arena, sw);
  i32[b + L.T_PULL_LOOPS] = 0;
  i32[b + L.T_PULL_LOOKING] = 0;
  i32[b + L.T_PULL_SLEEPING] = 0;
  const owner = schedOwner(arena, sw);
  if (owner) queueMicrotask(() => owner.pump());
  else {
    Atomics.add(i32, sw + S_BELL, 1);
    Atomics.notify(i32, sw + S_BELL);
  }
});
