/**
 * The sanitizer (`Arena.create({ sanitize })`): freed payloads are poisoned and checked when the
 * block comes back, and accesses through a remembered (block, generation) are checked against the
 * block's current state, so a use after free is named instead of silently corrupting the block's
 * next owner.
 */
import { UseAfterFreeError, type UseAfterFreeReport } from '../errors.js';
import type { Arena } from './arena.js';
import { threadField } from './check.js';
import * as L from './layout.js';
import { EV_UAF, EVENT_BITS_SHIFT, TC_SANITIZER, UAF_ACCESS_FENCE, UAF_ACCESS_FENCE_LOCK, UAF_ACCESS_LOCK, UAF_ACCESS_OTHER } from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';

const { B_GEN, B_TAG, GEN_MASK, STATE_LIVE, TAG_ALLOC_SHIFT, TAG_FREE_SHIFT, TAG_STATE_MASK, TAG_STATE_SHIFT, TAG_TYPE_MASK, TAG_TYPE_SHIFT } = L;

/** Most reports one thread keeps in counting mode (the arena-wide count goes on). */
const MAX_REPORTS = 1000;

/**
 * Lays the poison over the payload of the block of class `cls` at header word `hw`, which the
 * calling thread has just freed into its cache (or, reaping a dead thread, found in its cache).
 */
export function poisonPayload(i32: Int32Array, hw: number, cls: number): void {
  i32.fill(L.POISON, hw + L.BLOCK_HEADER_WORDS, hw + (L.SIZE_CLASSES[cls] >>> 2));
}

/**
 * Checks that the free block of class `cls` at header word `hw`, about to be handed out again, is
 * still all poison; counts a problem in the header (see {@link Arena.check}) when it is not.
 * Threads: the allocating thread, which owns the block (it sits in its cache).
 */
export function checkPoison(i32: Int32Array, hw: number, cls: number): void {
  const end = hw + (L.SIZE_CLASSES[cls] >>> 2);
  // Word 0 of a free payload is the free-list link; the rest must still be poison.
  for (let w = hw + L.BLOCK_HEADER_WORDS + 1; w < end; w++) {
    if (i32[w] !== L.POISON && i32[hw + B_GEN] & GEN_MASK) {
      Atomics.add(i32, L.H_PROBLEMS, 1);
      break;
    }
  }
}

/**
 * The access check behind {@link Arena.checkAccess}: the block at `hw` must be live with
 * generation `gen`. Returns true when it is; on a stale access throws UseAfterFreeError, or in
 * counting mode records it (arena-wide count and the view's report list) and returns false.
 */
export function checkAccess(arena: Arena, hw: number, gen: number, access: string, fence: number): boolean {
  const i32 = arena.i32;
  const tag = i32[hw + B_TAG];
  const state = (tag >>> TAG_STATE_SHIFT) & TAG_STATE_MASK;
  const cur = i32[hw + B_GEN] & GEN_MASK;
  if (state === STATE_LIVE && cur === gen) return true;
  const live = state === STATE_LIVE;
  const report: UseAfterFreeReport = {
    access,
    fence,
    block: hw * 4,
    takenGeneration: gen,
    currentGeneration: cur,
    freedBy: threadField(tag >>> TAG_FREE_SHIFT),
    nowType: live ? (L.BLOCK_TYPE_NAMES[(tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK] ?? 'unknown') : 'free',
    nowOwner: live ? threadField(tag >>> TAG_ALLOC_SHIFT) : -1,
    thread: arena.slot,
  };
  Atomics.add(i32, L.H_UAF_COUNT, 1);
  if (tracing(i32, TC_SANITIZER)) traceUseAfterFree(arena, report, live ? (tag >>> TAG_TYPE_SHIFT) & TAG_TYPE_MASK : 0, hw);
  if (!arena.counting) throw new UseAfterFreeError(report);
  if (arena.uafReports.length < MAX_REPORTS) arena.uafReports.push(report);
  return false;
}

const ACCESS_CODES: Readonly<Record<string, number>> = { fence: UAF_ACCESS_FENCE, lock: UAF_ACCESS_LOCK, 'fence-lock': UAF_ACCESS_FENCE_LOCK };

/** The use_after_free trace event of `r` (see EV_UAF for the packing). */
function traceUseAfterFree(arena: Arena, r: UseAfterFreeReport, nowType: number, hw: number): void {
  const fenceGen = Math.floor(r.fence / L.HANDLE_OFFSET_SCALE);
  traceEvent(
    arena,
    EV_UAF | (fenceGen << EVENT_BITS_SHIFT),
    hw,
    r.takenGeneration,
    r.currentGeneration | (nowType << 24),
    (r.freedBy + 1) | ((r.nowOwner + 1) << 10) | ((ACCESS_CODES[r.access] ?? UAF_ACCESS_OTHER) << 20),
    r.fence % L.HANDLE_OFFSET_SCALE,
  );
}
