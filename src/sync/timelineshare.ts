/**
 * Tracked open references of sw_sync timelines, and their kill-safe hand-over between threads.
 *
 * Every open reference (TL_FILE_REFS) a thread holds is an entry `[LGK_TIMELINE_REF, timeline,
 * generation]` of its ledger (src/fence/ledger.ts), written in the run of the operation that takes
 * it — `create`'s allocation, `get`'s compare-exchange, `receive`'s claim — and forgotten in the run
 * of close()'s `Atomics.sub`. The reaper of a thread terminated anywhere (stage LEDGER) drops
 * exactly the references it held, the last one closing the timeline as close() does.
 *
 * A reference for another thread travels as fences' do (src/fence/handover.ts), in a transit
 * record (flag TRF_TIMELINE) recorded in the sender's ledger as LGK_TL_TRANSIT: `share()` takes the
 * reference into it, `SwTimeline.receive` claims it with one compare-exchange that records it in the
 * receiver's ledger in its run, or `withdraw` takes it back into the sender's. At every instant the
 * reference is one ledger's: the sender's (its reaper withdraws and drops an unreceived one) or the
 * receiver's.
 *
 * Also here, the two ways close() drops a tracked reference: a holder's own, and the temporary one
 * a thread holding none takes to close the timeline for everyone.
 */
import type { Arena } from '../arena/arena.js';
import { handleGen } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errors, NO_ERROR, rethrowFirst } from '../errors.js';
import { claim, commitWithdrawal, stale, transitOf } from '../fence/handover.js';
import { ledgerAllocBlock, ledgerFind, ledgerReserve } from '../fence/ledger.js';
import { defineLedgerKind } from '../fence/ledgerreap.js';
import { closeLast, dropOpenRef, isOwner } from './timelineclose.js';
import { timelineRecord } from './signaling.js';

const { TL_FILE_REFS, TL_OWNER, SWR_STATE, SWS_LAST, LGK_TIMELINE_REF, LGK_TL_TRANSIT } = L;
const { TR_STATE, TR_FENCE, TR_FENCE_GEN, TR_FLAGS, TR_SENDER, TRANSIT_WORDS, TRS_EMPTY, TRS_SENT, TRS_CLAIMED, TRS_WITHDRAWN, TRF_TIMELINE } = FL;
const { LG_COUNT, LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN, T_LEDGER, T_LEDGER_SPARE, T_LEDGER_SPARE_GEN } = FL;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK } = A;

const TRANSIT_BYTES = (BLOCK_HEADER_WORDS + TRANSIT_WORDS) * 4;

/**
 * Takes another open reference of timeline `tw` for the calling thread — the compare-exchange of
 * TL_FILE_REFS from n > 0 to n + 1 — recorded in its ledger in that exchange's run (the entry's
 * words computed before, plain writes after, no back-edge): a thread terminated anywhere holds it
 * recorded or not at all. Throws EBADF (closed: nothing taken), ENOMEM.
 */
export function getOpenRef(arena: Arena, tw: number, handle: number): void {
  if (!tryGetOpenRef(arena, tw)) throw Errors.badHandle('timeline', handle, 'the timeline was closed');
}

/**
 * {@link getOpenRef} that returns false instead of throwing when no open reference is left (the
 * last close dropped it: the timeline is closed or closing; nothing taken). Throws ENOMEM.
 */
export function tryGetOpenRef(arena: Arena, tw: number): boolean {
  const lw = ledgerReserve(arena);
  const i32 = arena.i32;
  const n = i32[lw + LG_COUNT];
  const e = lw + LG_ENTRIES + n * LG_STRIDE;
  const gen = i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  for (;;) {
    const old = Atomics.load(i32, tw + TL_FILE_REFS);
    if (old <= 0) return false;
    if (Atomics.compareExchange(i32, tw + TL_FILE_REFS, old, old + 1) === old) {
      i32[e + LE_KIND] = LGK_TIMELINE_REF;
      i32[e + LE_VALUE] = tw;
      i32[e + LE_GEN] = gen;
      i32[lw + LG_COUNT] = n + 1;
      return true;
    }
  }
}

/**
 * Word index of the calling thread's ledger entry for an open reference of timeline `tw`, moved to
 * the last place (for {@link dropTrackedRef}), or -1 when it holds none.
 */
export function findOpenRef(arena: Arena, tw: number): number {
  return ledgerFind(arena, LGK_TIMELINE_REF, tw, arena.i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK);
}

/**
 * Drops the open reference of timeline `tw` whose ledger entry {@link findOpenRef} returned as `e`
 * (moved last; the ledger unchanged since): the `Atomics.sub` of TL_FILE_REFS, the entry forgotten in its
 * run. Returns the count before the drop (1: it was the last; the caller records that in the same
 * run it returns to).
 */
export function dropTrackedRef(arena: Arena, tw: number, e: number): number {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  const last = (e - lw - LG_ENTRIES) / LG_STRIDE;
  const old = Atomics.sub(i32, tw + TL_FILE_REFS, 1);
  i32[lw + LG_COUNT] = last;
  return old;
}

/**
 * Drops the calling thread's open reference of timeline `tw` whose ledger entry
 * {@link findOpenRef} returned as `e` (close() of a holder), under its timeline record at depth
 * `d`: SWS_LAST set in the drop's run when it was the last, so that the reaper of a thread
 * terminated from the drop on finishes the last close. The owner's close leaves the timeline
 * nobody's.
 */
export function dropOwnRef(arena: Arena, tw: number, e: number, d: number): void {
  const i32 = arena.i32;
  const rec = timelineRecord(arena, d);
  if (isOwner(arena, tw)) Atomics.store(i32, tw + TL_OWNER, 0); // its owner closed it: nobody's now
  const old = dropTrackedRef(arena, tw, e);
  if (old === 1) i32[rec + SWR_STATE] |= SWS_LAST;
  if (old === 1) closeLast(arena, tw, d, true);
}

/**
 * close() of a thread holding no open reference of timeline `tw`, under its timeline record at
 * depth `d`, with an open reference it has just taken (its ledger's: kept alive, and dropped by
 * its reaper): the timeline closed as a timeline, as its owner's death does (closeLast without
 * the put, as closeOrphanedTimelines does), then that reference dropped as a holder's. The
 * record serves both: a thread terminated inside leaves its reaper the signaling to finish (or,
 * past a last drop, the last close) and its ledger the reference. Callback errors: the first is
 * rethrown once both are done.
 */
export function closeHoldingNone(arena: Arena, tw: number, d: number): void {
  let first: unknown = NO_ERROR;
  try {
    closeLast(arena, tw, d, false);
  } catch (err) {
    first = err;
  }
  // Looked up again: the callbacks that ran may have changed the ledger (or, closing another view
  // of this timeline here, dropped this very reference).
  const e = findOpenRef(arena, tw);
  try {
    if (e >= 0) dropOwnRef(arena, tw, e, d);
  } catch (err) {
    if (first === NO_ERROR) first = err;
  }
  rethrowFirst(first);
}

/**
 * Takes a new open reference of timeline `tw` into a transit record of the calling thread and
 * returns its token (see the module comment). Threads: the sender. Throws EBADF (closed: nothing
 * shared), ENOMEM.
 */
export function shareTimeline(arena: Arena, tw: number, handle: number): number {
  const i32 = arena.i32;
  const tgen = i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  const t = ledgerAllocBlock(arena, LGK_TL_TRANSIT, TRANSIT_BYTES, A.BlockType.TRANSIT);
  // In the allocation's run (no call since it): the reaper reads an EMPTY record as "holds nothing".
  i32[t + TR_STATE] = TRS_EMPTY;
  const sent = ((i32[t - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK) << 2) | TRS_SENT;
  i32[t + TR_FENCE] = tw;
  i32[t + TR_FENCE_GEN] = tgen;
  i32[t + TR_FLAGS] = TRF_TIMELINE;
  i32[t + TR_SENDER] = arena.me;
  for (;;) {
    const old = Atomics.load(i32, tw + TL_FILE_REFS);
    if (old <= 0) break;
    // The reference and the state that says the record holds it: one run.
    if (Atomics.compareExchange(i32, tw + TL_FILE_REFS, old, old + 1) === old) {
      i32[t + TR_STATE] = sent;
      return arena.handleOf(t - BLOCK_HEADER_WORDS);
    }
  }
  forgetRecord(arena, t);
  throw Errors.badHandle('timeline', handle, 'the timeline was closed');
}

/**
 * Forgets the calling thread's ledger entry of its EMPTY transit record `t` and frees it through the
 * slot's spare word (a terminate() between the two leaves it to the reaper's spare handling).
 */
function forgetRecord(arena: Arena, t: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[t - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  i32[sb + T_LEDGER_SPARE_GEN] = gen;
  i32[sb + T_LEDGER_SPARE] = t;
  const e = ledgerFind(arena, LGK_TL_TRANSIT, t, gen);
  if (e >= 0) {
    const lw = i32[sb + T_LEDGER];
    i32[lw + LG_COUNT] = (e - lw - LG_ENTRIES) / LG_STRIDE;
  }
  arena.freeBlock(t - BLOCK_HEADER_WORDS);
  i32[sb + T_LEDGER_SPARE] = 0;
}

/**
 * Claims the open reference behind `token` (from {@link shareTimeline}) for the calling thread,
 * recorded in its ledger in the claim's run, and frees the transit record. Returns the timeline's
 * payload word. Throws EINVAL (not a timeline token), EBADF (received, or dropped with its dead
 * sender: nothing changes), ENOMEM.
 */
export function receiveTimeline(arena: Arena, token: unknown): number {
  const i32 = arena.i32;
  const t = transitOf(arena, token, 'SwTimeline.receive', true);
  // The record's generation from the token, never the block's (see receiveAt in handover.ts).
  const sent = (handleGen(token as number) << 2) | TRS_SENT;
  if (Atomics.load(i32, t + TR_STATE) !== sent) throw stale('SwTimeline.receive', token);
  const tw = i32[t + TR_FENCE];
  const tgen = i32[t + TR_FENCE_GEN];
  const lw = ledgerReserve(arena); // room first: no allocation inside the claim
  if (!claim(arena, lw, t, sent, tw, tgen, false, LGK_TIMELINE_REF)) throw stale('SwTimeline.receive', token);
  arena.freeBlock(t - BLOCK_HEADER_WORDS);
  i32[arena.slotBase + T_LEDGER_SPARE] = 0;
  return tw;
}

/**
 * Takes back the open reference of timeline `tw` that the calling thread shared as `token` and
 * nobody received: the compare-exchange SENT → WITHDRAWN turns its ledger entry (LGK_TL_TRANSIT)
 * into an open reference of the timeline (LGK_TIMELINE_REF) in its run, so the reference is the
 * sender's own again at every instant (a close drops it, as its reaper would); the record is then
 * freed through the slot's spare word. Threads: the sender. Throws EINVAL (not a timeline token, or
 * another timeline's), EPERM (another thread's share), EBADF (received, withdrawn, or dropped with
 * its dead sender: nothing changes).
 */
export function withdrawTimeline(arena: Arena, tw: number, token: unknown): void {
  const i32 = arena.i32;
  const t = transitOf(arena, token, 'timeline.withdraw', true);
  const tgen = handleGen(token as number); // the record's generation from the token, as in receive
  const sent = (tgen << 2) | TRS_SENT;
  if (Atomics.load(i32, t + TR_STATE) !== sent) throw stale('timeline.withdraw', token);
  if (i32[t + TR_FENCE] !== tw) throw Errors.invalid(`timeline.withdraw: token ${token} is a share of another timeline`);
  const e = ledgerFind(arena, LGK_TL_TRANSIT, t, tgen);
  if (e < 0) throw Errors.notOwner(`timeline transit token ${token}`, i32[t + TR_SENDER] - 1, arena.slot);
  if (!commitWithdrawal(arena, t, tgen, e, LGK_TIMELINE_REF)) throw stale('timeline.withdraw', token);
}

/* ───────────── the reapers ───────────── */

/** A dead thread's open reference: dropped as by close() (the dead thread held it: still checked). */
defineLedgerKind(LGK_TIMELINE_REF, (arena, tw, gen) => {
  if (arena.isLive(tw - BLOCK_HEADER_WORDS, gen)) dropOpenRef(arena, tw);
});

/**
 * A dead sender's timeline transit record: withdrawn and its reference dropped when still SENT;
 * left to the receiver when CLAIMED; freed when EMPTY (killed while filling it). Gone already
 * (received and freed): nothing.
 */
defineLedgerKind(LGK_TL_TRANSIT, (arena, t, tgen) => {
  const i32 = arena.i32;
  if (!arena.isLive(t - BLOCK_HEADER_WORDS, tgen)) return;
  const sent = (tgen << 2) | TRS_SENT;
  const seen = Atomics.compareExchange(i32, t + TR_STATE, sent, (tgen << 2) | TRS_WITHDRAWN);
  if (seen === ((tgen << 2) | TRS_CLAIMED)) return;
  const tw = i32[t + TR_FENCE];
  const twGen = i32[t + TR_FENCE_GEN];
  arena.freeBlock(t - BLOCK_HEADER_WORDS);
  if (seen === sent && arena.isLive(tw - BLOCK_HEADER_WORDS, twGen)) dropOpenRef(arena, tw);
});
