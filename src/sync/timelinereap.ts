/**
 * Finishing the sw_sync work a dead thread had in flight, as a reap hook (stage TIMELINES, after
 * SIGNALS delivered the callback list of the point it was signaling, before RELEASES frees the
 * points it was releasing): a timeline block it was freeing, the timeline half of a point release
 * it was inside of, the point it was creating (createFence), and its timeline records
 * (src/sync/signaling.ts; those past SW_CAP in blocks, freed here) — the points its `inc` or
 * `close` had not signaled yet, a last close, the point reference it held for signaling. (Its open
 * references are ledger entries: stage LEDGER.)
 */
import type { Arena } from '../arena/arena.js';
import { onCheck, onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { attempt, Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { linkedPayload, maxBlocks } from '../arena/handles.js';
import { putFence } from '../fence/release.js';
import { releasePoint, swSyncOps } from './points.js';
import { popTimelineRecord, pushTimelineRecord, signalDue, timelineRecord } from './signaling.js';
import { closeLast } from './timelineclose.js';

const { SW_CAP, SWR_TL, SWR_STATE, SWR_POINT, SWR_PGEN, SWR_WORDS, SWB_DOWN, SWS_LAST, SWS_PUT } = L;
const { T_SW, T_SW_DEPTH, T_SW_FREE, T_SW_FREE_GEN, T_SW_NEW, T_SW_NEW_GEN, T_SW_MORE } = L;
const { BLOCK_HEADER_WORDS, GEN_MASK } = A;

/** Reap hook: everything sw_sync the dead thread of `slot` left half done (see the file comment). */
function finishDeadTimelineWork(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: a thread detaches between calls
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  // Terminated at the free of a timeline whose last struct reference it had dropped.
  const tw = i32[b + T_SW_FREE];
  if (tw !== 0 && arena.isLive(tw - BLOCK_HEADER_WORDS, i32[b + T_SW_FREE_GEN])) arena.freeBlock(tw - BLOCK_HEADER_WORDS);
  i32[b + T_SW_FREE] = 0;
  let first: unknown = NO_ERROR;
  first = attempt(putCreated, arena, b, 0, first);
  // Point releases it was inside of (ops.release called: REL_IN_RELEASE): RELEASES frees the
  // block without calling it again, so its timeline half (unlink, timeline reference) is done here.
  const nr = Math.min(i32[b + FL.T_RELEASE_DEPTH], FL.RELEASE_CAP);
  for (let j = nr - 1; j >= 0; j--) {
    const fw = i32[FL.releaseRecord(b, j, FL.REC_FW)];
    const gs = i32[FL.releaseRecord(b, j, FL.REC_STATE)];
    if (gs & FL.REL_IN_RELEASE && arena.isLive(fw - BLOCK_HEADER_WORDS, gs & GEN_MASK) && i32[fw + FL.F_OPS] === swSyncOps.id)
      first = attempt(releasePoint, arena, fw, 0, first);
  }
  // Its timeline records, innermost first: the blocks past SW_CAP, then the slot's.
  const depth = i32[b + T_SW_DEPTH];
  const blocks = recordBlocks(arena, b);
  for (let j = depth - 1; j >= 0; j--) {
    const r = j < SW_CAP ? b + T_SW + j * SWR_WORDS : blocks[depth - 1 - j];
    if (r !== undefined) first = attempt(finishRecord, arena, r, 0, first);
  }
  i32[b + T_SW_DEPTH] = 0;
  i32[b + T_SW_MORE] = 0;
  for (const r of blocks) arena.freeBlock(r - BLOCK_HEADER_WORDS);
  rethrowFirst(first);
}

/**
 * The record blocks stacked on the slot at `b` (T_SW_MORE), innermost first, each checked to be a
 * live INTERNAL block (the chain cannot be longer than the heap has blocks).
 */
function recordBlocks(arena: Arena, b: number): number[] {
  const i32 = arena.i32;
  const out: number[] = [];
  for (let r = i32[b + T_SW_MORE]; r !== 0; r = i32[r + SWB_DOWN]) {
    if (out.length >= maxBlocks(arena)) throw Errors.corruptArena('a thread\'s timeline record blocks do not end');
    out.push(linkedPayload(arena, r, A.BlockType.INTERNAL, 'timeline record block'));
  }
  return out;
}
onReap(ReapStage.TIMELINES, finishDeadTimelineWork);

/**
 * The point a dead thread was creating or reusing inside createFence (slot word T_SW_NEW at
 * `b`): freed while not initialised (flags 0 from its allocation's run), else its creator's
 * reference put — whose release unlinks the point and drops its timeline reference if it had
 * got that far (points.ts pointAtLocked). Its fd, if installed, is closed at stage FILES.
 */
function putCreated(arena: Arena, b: number): void {
  const i32 = arena.i32;
  const p = i32[b + T_SW_NEW];
  i32[b + T_SW_NEW] = 0;
  if (p === 0 || !arena.isLive(p - BLOCK_HEADER_WORDS, i32[b + T_SW_NEW_GEN])) return;
  if (i32[p + FL.F_FLAGS] & FL.FLAG_INITIALIZED) putFence(arena, p);
  else arena.freeBlock(p - BLOCK_HEADER_WORDS);
}

/**
 * Finishes timeline record `r` of a dead thread: a last close not complete closes the timeline
 * (again: TL_CLOSED, the due points) and puts the open state's reference; an inc, or a close cut
 * off before its drop, signals the points now due (the reference that close had not dropped yet
 * is still its ledger entry: stage LEDGER drops it). Then the point reference the record names is
 * dropped — after its callback list was delivered (stage SIGNALS).
 */
function finishRecord(arena: Arena, r: number): void {
  const i32 = arena.i32;
  const tw = i32[r + SWR_TL];
  const st = i32[r + SWR_STATE];
  try {
    if (tw === 0 || !arena.isLive(tw - BLOCK_HEADER_WORDS, st & GEN_MASK)) return;
    if (st & SWS_PUT) return; // a complete close
    const d = pushTimelineRecord(arena, tw, st & SWS_LAST);
    try {
      if (st & SWS_LAST) closeLast(arena, tw, d, true);
      else signalDue(arena, tw, timelineRecord(arena, d));
    } finally {
      popTimelineRecord(arena, d);
    }
  } finally {
    const p = i32[r + SWR_POINT];
    i32[r + SWR_POINT] = 0;
    if (p !== 0 && arena.isLive(p - BLOCK_HEADER_WORDS, i32[r + SWR_PGEN])) putFence(arena, p);
  }
}

/** Check hook: a thread between calls has no sw_sync work in flight. */
onCheck((arena) => {
  const i32 = arena.i32;
  const problems: string[] = [];
  const b = arena.slotBase;
  if (i32[b + T_SW_DEPTH] !== 0) problems.push(`thread ${arena.slot} has ${i32[b + T_SW_DEPTH]} sw_sync timeline records in flight`);
  if (i32[b + T_SW_MORE] !== 0) problems.push(`thread ${arena.slot} has timeline record blocks stacked (@${i32[b + T_SW_MORE] * 4})`);
  if (i32[b + T_SW_FREE] !== 0) problems.push(`thread ${arena.slot} is freeing timeline @${i32[b + T_SW_FREE] * 4}`);
  if (i32[b + T_SW_NEW] !== 0) problems.push(`thread ${arena.slot} holds a creator's reference on point @${i32[b + T_SW_NEW] * 4}`);
  return { problems };
});
