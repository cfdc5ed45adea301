/**
 * The robust-listed lock words of a dead thread (src/locks/lockword.ts lists them), released as a
 * reap hook at stage LOCKS and remembered for the SIGNALERS stage (src/fence/signaler.ts).
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import { releaseDeadWord, takenWords } from './owners.js';
import * as L from './layout.js';
import { releaseDeadTicket } from './ticket.js';

const OWNER = L.LOCK_OWNER_MASK;

/**
 * Reap hook: releases every robust-listed word the dead thread held, marked owner-died, and
 * recovers the ticket it had taken (ticket.ts). Scans one entry past the count: a word is
 * published before its CAS (see acquireWord), and only words the dead thread owns are touched.
 */
function releaseDeadLocks(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: refused while locks are held (lockword.ts)
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const dead = slot + 1;
  const held: number[] = [];
  const pending = i32[b + L.T_ROBUST_PENDING];
  if (pending > 0 && pending < i32.length && (Atomics.load(i32, pending) & OWNER) === dead) held.push(pending);
  releaseDeadTicket(i32, b, dead);
  const n = Math.min(Math.max(i32[b + L.T_ROBUST_COUNT], 0) + 1, L.ROBUST_CAP);
  for (let j = 0; j < n; j++) {
    const idx = i32[b + L.T_ROBUST + j];
    if (!(idx > 0 && idx < i32.length)) continue;
    if ((Atomics.load(i32, idx) & OWNER) === dead) held.push(idx);
    releaseDeadWord(i32, idx, dead);
  }
  // Words a waiter took over before this reap (owners.ts) were held at death too.
  held.push(...takenWords(i32, b));
  heldAtDeath.set(slot, held);
}

/** Per dead slot being reaped: the robust-listed words it held when it died (collected at LOCKS). */
const heldAtDeath = new Map<number, number[]>();

/**
 * The robust-listed lock words the thread of dead slot `slot` held when it died, collected by this
 * reap's LOCKS stage; forgotten once read. A fence that borrows one of them may have been inside
 * its signal (src/fence/signaler.ts reads this, as it reads the inline locks of inlinereap.ts).
 */
export function takeRobustHeldAtDeath(slot: number): number[] {
  const held = heldAtDeath.get(slot) ?? [];
  heldAtDeath.delete(slot);
  return held;
}
onReap(ReapStage.LOCKS, releaseDeadLocks);
