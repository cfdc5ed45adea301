/**
 * The explicit, kill-safe hand-over of a fence reference between threads, and tracked creation.
 *
 * A reference handed to another thread is, at every instant, owned by exactly one of: the
 * sender's ledger (as a transit record), the receiver's ledger (as a fence reference). Nothing in
 * between is a bare number in a message:
 *
 * - {@link shareAt} (`fence.share()`): the sender allocates a transit record (a TRANSIT block,
 *   struct `transit`) recorded in its ledger as LGK_TRANSIT in the allocation's run, and takes a
 *   new reference into it with `Atomics.add` followed by the plain write that marks it SENT. The
 *   token is the block's handle: a safe integer wider than 32 bits, generation included, so a
 *   token kept past the record's free is refused (EBADF) instead of naming a reused block. Post it
 *   in a Float64Array or BigInt64Array word, or a message.
 * - {@link receiveAt} (`Fence.receive`): the receiver claims the record with one compare-exchange
 *   SENT → CLAIMED, and in that run records the reference in its own ledger (LGK_FENCE_REF) and the
 *   record in its slot's spare word (the block it is freeing); then frees it. The state word
 *   carries the record's generation, and the claim compares it with the token's (handleGen, never
 *   the block header's, which a new record may have moved on), so a claim through a stale token
 *   fails even where a new record took the block. With TRF_SIGNALING the claim also makes the receiver the thread responsible for
 *   signaling (src/fence/signaler.ts): the claim is made under the fence lock and writes the
 *   signaler words in its run, so responsibility moves exactly when the reference does.
 * - {@link withdrawAt} (`Fence.withdraw`): the sender takes an unreceived reference back with the
 *   compare-exchange SENT → WITHDRAWN, turning its ledger entry into a fence reference in that run,
 *   and puts it.
 *
 * Death: the sender's reaper (the LGK_TRANSIT kind below) withdraws what was not received and puts
 * it; a receiver killed after its claim holds a ledger entry its reaper puts, and a spare word its
 * reaper frees. Either side killed anywhere: every reference is dropped exactly once.
 *
 * The sender's ledger keeps an entry per share until it is compacted (the receiver frees the
 * record; the entry's generation then tells it is stale): ledgerCompact, or any ledger growth.
 */
import type { Arena } from '../arena/arena.js';
import { blockTypeAt, handleGen, isStaleHandle } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { describeValue, Errors, FenceError, optionsArg } from '../errors.js';
import { checkInitKeys, createFenceAt, type FenceInit } from './create.js';
import { fenceLock, fenceUnlock } from './lock.js';
import { ledgerAbortCreating, ledgerAllocBlock, ledgerFind, ledgerGetRef, ledgerOpenCreating, ledgerPutRef, ledgerReserve } from './ledger.js';
import { defineLedgerKind } from './ledgerreap.js';
import { liveFenceBlock, putFence } from './release.js';

const { TR_STATE, TR_FENCE, TR_FENCE_GEN, TR_FLAGS, TR_SENDER, TRANSIT_WORDS, TRS_SENT, TRS_CLAIMED, TRS_WITHDRAWN, TRF_SIGNALING, TRF_TIMELINE } = L;
const { LG_COUNT, LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN, T_LEDGER, T_LEDGER_SPARE, T_LEDGER_SPARE_GEN, F_REFCOUNT, F_FLAGS, F_TIMESTAMP, FLAG_SIGNALED } = L;
const { BLOCK_HEADER_WORDS, B_GEN, GEN_MASK, T_SERIAL } = A;

const TRANSIT_BYTES = (BLOCK_HEADER_WORDS + TRANSIT_WORDS) * 4;

/** What `fence.share(options)` takes. */
export interface ShareOptions {
  /**
   * The receiver also becomes the thread responsible for signaling the fence (see
   * `Fence.adoptSignaling`), in the run of its claim. Default false: the responsible thread stays.
   */
  signaling?: boolean;
}

/**
 * Creates a fence whose one reference is recorded in the calling thread's ledger with no window
 * between the allocation and the record (ledgerOpenCreating; the allocation writes the entry's
 * value in its run): a thread terminated at any point leaks nothing. Returns the payload word index; the reference is put with putTracked (ledgerPutRef).
 * Throws as Fence.create (EINVAL, EBADF, ENOMEM; nothing recorded).
 */
export function createTrackedAt(arena: Arena, init: FenceInit): number {
  // Off the hot path: every key checked here (createFenceAt's fast path does not count them).
  if (init !== null && typeof init === 'object') checkInitKeys(init, 'Fence.createTracked');
  const e = ledgerOpenCreating(arena);
  let fw: number;
  try {
    fw = createFenceAt(arena, init, e + LE_VALUE);
  } catch (err) {
    ledgerAbortCreating(arena); // refused before its allocation, or by it: nothing was allocated
    throw err;
  }
  const i32 = arena.i32;
  // Right after the return (no call between): the entry is complete from here.
  i32[e + LE_GEN] = i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  return fw;
}

/**
 * Takes a new reference on fence `fw` into a transit record of the calling thread (see the module
 * comment) and returns its token. The caller has validated `fw` (it holds a reference).
 * Threads: the sender. Throws EINVAL (options), EBADF (a fence without references: nothing is
 * shared), ENOMEM.
 */
export function shareAt(arena: Arena, fw: number, options?: ShareOptions): number {
  const signaling = shareSignaling(options);
  const i32 = arena.i32;
  const fgen = i32[fw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  const rc = fw + F_REFCOUNT;
  const tw = ledgerAllocBlock(arena, L.LGK_TRANSIT, TRANSIT_BYTES, A.BlockType.TRANSIT);
  // In the allocation's run (no call since it): the reaper reads an EMPTY record as "holds nothing".
  i32[tw + TR_STATE] = L.TRS_EMPTY;
  const sent = ((i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK) << 2) | TRS_SENT;
  i32[tw + TR_FENCE] = fw;
  i32[tw + TR_FENCE_GEN] = fgen;
  i32[tw + TR_FLAGS] = signaling ? TRF_SIGNALING : 0;
  i32[tw + TR_SENDER] = arena.me;
  // The reference and the state that says the record holds it: one run.
  const old = Atomics.add(i32, rc, 1);
  i32[tw + TR_STATE] = sent;
  if (old < 1) {
    Atomics.sub(i32, rc, 1);
    i32[tw + TR_STATE] = L.TRS_EMPTY;
    dropRecord(arena, tw, L.LGK_TRANSIT);
    throw Errors.badHandle('fence', arena.handleOf(fw - BLOCK_HEADER_WORDS), `share on a fence with refcount ${old}`);
  }
  return arena.handleOf(tw - BLOCK_HEADER_WORDS);
}

/** `options.signaling` as a boolean (absent: false). Throws EINVAL. */
function shareSignaling(options: ShareOptions | undefined): boolean {
  if (options === undefined) return false;
  const s = optionsArg(options, 'share', ['signaling']).signaling;
  if (s !== undefined && typeof s !== 'boolean') throw Errors.invalid(`share options.signaling must be a boolean, got ${describeValue(s)}`);
  return s === true;
}

/**
 * Forgets the calling thread's ledger entry `[kind, tw]` of a transit record it is done with and
 * frees the record, through the slot's spare word (a terminate() between the two leaves the
 * record to the reaper's spare handling, src/fence/ledger.ts).
 */
function dropRecord(arena: Arena, tw: number, kind: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[tw - BLOCK_HEADER_WORDS + B_GEN] & GEN_MASK;
  i32[sb + T_LEDGER_SPARE_GEN] = gen;
  i32[sb + T_LEDGER_SPARE] = tw;
  const e = ledgerFind(arena, kind, tw, gen);
  if (e >= 0) {
    const lw = i32[sb + T_LEDGER];
    i32[lw + LG_COUNT] = (e - lw - LG_ENTRIES) / LG_STRIDE;
  }
  arena.freeBlock(tw - BLOCK_HEADER_WORDS);
  i32[sb + T_LEDGER_SPARE] = 0;
}

/**
 * The transit record named by `token`, for `where`: its payload word. `timeline`: the record must
 * hold a sw_sync timeline's open reference (TRF_TIMELINE), else a fence reference. Throws EINVAL
 * (not a positive safe integer — never looked up —, a live block that is no transit record, a
 * record of the other kind), EBADF (no handle of this arena, or a record already received,
 * withdrawn or reaped: freed).
 */
export function transitOf(arena: Arena, token: unknown, where: string, timeline: boolean): number {
  const from = timeline ? 'timeline.share()' : 'fence.share()';
  if (typeof token !== 'number' || !Number.isSafeInteger(token) || token <= 0) throw badToken(arena, token, `${where}: token must be a positive safe integer from ${from}`);
  const tw = arena.resolve(token, A.BlockType.TRANSIT, 'transit token') + BLOCK_HEADER_WORDS;
  if (((arena.i32[tw + TR_FLAGS] & TRF_TIMELINE) !== 0) !== timeline) throw Errors.invalid(`${where}: token ${token} is not from ${from}`);
  return tw;
}

/**
 * Claims the reference behind `token` for the calling thread, recorded in its ledger in the
 * claim's run (and, with TRF_SIGNALING, the fence's signaling responsibility), and frees the
 * transit record. Returns the fence's payload word index; the reference is put with putTracked.
 * Threads: any attached thread (the sender too). Throws EINVAL (token not a number, or not a
 * token), EBADF (stale: received, withdrawn, its sender reaped — nothing changes), ENOMEM.
 */
export function receiveAt(arena: Arena, token: unknown): number {
  const i32 = arena.i32;
  const tw = transitOf(arena, token, 'Fence.receive', false);
  // The record's generation from the token (handleGen), never re-read from the block: once
  // resolved, the record can be claimed, freed and its block reused by a new share (the sender's
  // cache hands the block it freed last to its next share), and a compare-exchange against that
  // record's SENT state would let a stale token claim it.
  const sent = (handleGen(token as number) << 2) | TRS_SENT;
  if (Atomics.load(i32, tw + TR_STATE) !== sent) throw stale('Fence.receive', token);
  const fw = i32[tw + TR_FENCE];
  const fgen = i32[tw + TR_FENCE_GEN];
  if (!(i32[tw + TR_FLAGS] & TRF_SIGNALING)) {
    const lw = ledgerReserve(arena); // room first: no allocation inside the claim
    if (!claim(arena, lw, tw, sent, fw, fgen, false, L.LGK_FENCE_REF)) throw stale('Fence.receive', token);
  } else if (!claimSignaling(arena, tw, sent, fw, fgen)) {
    throw stale('Fence.receive', token);
  }
  arena.freeBlock(tw - BLOCK_HEADER_WORDS);
  i32[arena.slotBase + T_LEDGER_SPARE] = 0;
  return fw;
}

/**
 * The EINVAL of a value that is no token (`what` says what a token is). A negative int32 gets the
 * truncation hint only when its low bits name a block offset in the heap: a token kept in an
 * Int32Array word, whose bit 31 was set.
 */
function badToken(arena: Arena, token: unknown, what: string): FenceError {
  const hw = typeof token === 'number' && Number.isInteger(token) && token < 0 && token >= -0x80000000 ? (token & A.HANDLE_OFFSET_MASK) * 2 : -1;
  const cut = hw >= arena.heapStartW && hw < arena.heapEndW && (hw & 3) === 0;
  return Errors.invalid(`${what}, got ${describeValue(token)}${cut ? ' (it looks cut to 32 bits: keep tokens in a message or a Float64Array/BigInt64Array word, never an Int32Array)' : ''}`);
}

/** The EBADF of a token whose record no longer holds its reference. */
export function stale(where: string, token: unknown): FenceError {
  return Errors.badHandle('transit token', token, `${where}: the reference was already received, withdrawn, or dropped with its dead sender`);
}

/**
 * The claim: compare-exchange `sent` → CLAIMED on record `tw`, then in its run (plain writes, every
 * index computed before) the reference `[fw, fgen]` appended to ledger `lw` as `kind` (a fence's,
 * or a timeline's open reference), the record put in the spare word, and — `signaling` — the
 * calling thread written as the fence's responsible thread (the caller holds the fence lock and saw
 * it unsignaled). Returns false when the claim lost.
 */
export function claim(arena: Arena, lw: number, tw: number, sent: number, fw: number, fgen: number, signaling: boolean, kind: number): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const n = i32[lw + LG_COUNT];
  const e = lw + LG_ENTRIES + n * LG_STRIDE;
  const me = arena.me;
  const serial = i32[sb + T_SERIAL];
  if (Atomics.compareExchange(i32, tw + TR_STATE, sent, (sent & ~3) | TRS_CLAIMED) !== sent) return false;
  i32[e + LE_KIND] = kind;
  i32[e + LE_VALUE] = fw;
  i32[e + LE_GEN] = fgen;
  i32[lw + LG_COUNT] = n + 1;
  i32[sb + T_LEDGER_SPARE_GEN] = sent >>> 2;
  i32[sb + T_LEDGER_SPARE] = tw;
  if (signaling) {
    i32[fw + F_TIMESTAMP] = me;
    i32[fw + F_TIMESTAMP + 1] = serial;
  }
  return true;
}

/**
 * A claim that also moves the signaling responsibility: under the fence lock, so that no signal
 * overwrites the timestamp words between the check and the claim. A temporary reference keeps the
 * fence alive while the lock is taken (the transit's could be withdrawn and put meanwhile); it is
 * tracked (ledgerGetRef: taken and recorded in one run), so a terminate() here leaks nothing.
 */
function claimSignaling(arena: Arena, tw: number, sent: number, fw: number, fgen: number): boolean {
  const i32 = arena.i32;
  const hw = fw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, fgen)) return false;
  try {
    ledgerGetRef(arena, fw);
  } catch (e) {
    if (e instanceof FenceError && e.code === 'EBADF') return false; // lost its last reference meanwhile
    throw e;
  }
  // As in signaler.ts: the block may have been released and reused between the check and the get.
  if (!arena.isLive(hw, fgen) || blockTypeAt(i32, hw) !== A.BlockType.FENCE) {
    // Reused as a fence: the get took a real reference on it, recorded at its generation: a
    // tracked put (it releases the fence if its owner dropped its own meanwhile; see undoStaleGet).
    if (liveFenceBlock(i32, hw) && ledgerPutRef(arena, fw, i32[hw + B_GEN] & GEN_MASK)) return false;
    // Reused as anything else: the increment undone first, the entry forgotten in its run (see
    // src/fence/drop.ts): the entry names the block at the generation the get saw (ledgerGetRef),
    // so a terminate() at the Atomics call, before it runs, leaves the reaper an entry to put;
    // forgotten first, that reference would be held by nobody.
    const lw = i32[arena.slotBase + T_LEDGER];
    const n = i32[lw + LG_COUNT] - 1;
    Atomics.sub(i32, fw + F_REFCOUNT, 1);
    i32[lw + LG_COUNT] = n;
    return false;
  }
  let claimed = false;
  try {
    const lw = ledgerReserve(arena);
    fenceLock(arena, fw);
    try {
      claimed = claim(arena, lw, tw, sent, fw, fgen, !(i32[fw + F_FLAGS] & FLAG_SIGNALED), L.LGK_FENCE_REF);
    } finally {
      fenceUnlock(arena, fw);
    }
  } finally {
    ledgerPutRef(arena, fw, fgen); // the temporary one (after a claim, the claimed one is left)
  }
  return claimed;
}

/**
 * Takes back, and puts, the reference the calling thread shared as `token` if nobody received it.
 * The compare-exchange SENT → WITHDRAWN turns the sender's ledger entry into a fence reference in
 * its run; the record is then freed and the reference put (ledgerPutRef), each step kill-safe.
 * Threads: the sender. Returns true when withdrawn, false when the token no longer names a share
 * (received, withdrawn: its record freed). Throws EINVAL (not a positive safe integer, a live block
 * that is no transit record), EBADF (a number that names no block of the arena), EPERM (a live
 * share of another thread).
 */
export function withdrawAt(arena: Arena, token: unknown): boolean {
  const i32 = arena.i32;
  let tw: number;
  try {
    tw = transitOf(arena, token, 'Fence.withdraw', false);
  } catch (e) {
    // Received or withdrawn: the record was freed. A number that never was a token stays EBADF.
    if (e instanceof FenceError && e.code === 'EBADF' && isStaleHandle(arena, token)) return false;
    throw e;
  }
  const tgen = handleGen(token as number); // from the token, as in receiveAt
  const e = ledgerFind(arena, L.LGK_TRANSIT, tw, tgen);
  if (e < 0) throw Errors.notOwner(`transit token ${token}`, i32[tw + TR_SENDER] - 1, arena.slot);
  const fw = i32[tw + TR_FENCE];
  const fgen = i32[tw + TR_FENCE_GEN];
  if (!commitWithdrawal(arena, tw, tgen, e, L.LGK_FENCE_REF)) return false; // claimed: the receiver frees it
  ledgerPutRef(arena, fw, fgen);
  return true;
}

/**
 * The commit of a withdrawal (a fence's or a timeline's share): the compare-exchange of transit
 * record `t` (generation `tgen`) from SENT to WITHDRAWN turns the sender's ledger entry `e` into a
 * reference of `kind` on the shared object (the record's TR_FENCE, at TR_FENCE_GEN) in its run, so
 * the reference is the sender's own again at every instant; the record is then freed through the
 * slot's spare word. Returns false when a receiver claimed it first (nothing changed: the
 * receiver frees the record).
 */
export function commitWithdrawal(arena: Arena, t: number, tgen: number, e: number, kind: number): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const value = i32[t + TR_FENCE];
  const gen = i32[t + TR_FENCE_GEN];
  const sent = (tgen << 2) | TRS_SENT;
  if (Atomics.compareExchange(i32, t + TR_STATE, sent, (tgen << 2) | TRS_WITHDRAWN) !== sent) return false;
  i32[e + LE_KIND] = kind;
  i32[e + LE_VALUE] = value;
  i32[e + LE_GEN] = gen;
  i32[sb + T_LEDGER_SPARE_GEN] = tgen;
  i32[sb + T_LEDGER_SPARE] = t;
  arena.freeBlock(t - BLOCK_HEADER_WORDS);
  i32[sb + T_LEDGER_SPARE] = 0;
  return true;
}

/* ───────────── the sender's reaper ───────────── */

/**
 * A dead sender's transit record: withdrawn and its reference put when still SENT; left to the
 * receiver (alive, or its reaper through the spare word) when CLAIMED; freed when EMPTY (killed
 * while filling it, before it held a reference). Gone already (received and freed): nothing.
 */
defineLedgerKind(L.LGK_TRANSIT, (arena, tw, tgen) => {
  const i32 = arena.i32;
  if (!arena.isLive(tw - BLOCK_HEADER_WORDS, tgen)) return;
  const sent = (tgen << 2) | TRS_SENT;
  const seen = Atomics.compareExchange(i32, tw + TR_STATE, sent, (tgen << 2) | TRS_WITHDRAWN);
  if (seen === ((tgen << 2) | TRS_CLAIMED)) return;
  const fw = i32[tw + TR_FENCE];
  const fgen = i32[tw + TR_FENCE_GEN];
  arena.freeBlock(tw - BLOCK_HEADER_WORDS);
  if (seen === sent && arena.isLive(fw - BLOCK_HEADER_WORDS, fgen)) putFence(arena, fw);
});
