/**
 * The reference ledger: what a thread holds that nobody else could give back if it died — fence
 * references, driver operations and drivers. One block per thread slot (T_LEDGER), entries
 * `[kind, value, generation]`. Only the owner writes it; the reaper reads it once the owner is dead
 * (the LEDGER reap stage, ./ledgerreap.ts), so no lock is needed. Entries may go stale (an
 * operation finished by another thread): the generation tells, and {@link ledgerCompact} drops them.
 *
 * Recording is kill-safe when what is recorded happens inside {@link ledgerAllocBlock} or
 * {@link ledgerGetRef}: the block allocation or the refcount increment, then only plain writes up to
 * the entry count (no call: a terminate() lands at function entries and Atomics calls, not at a
 * return; see src/fence/drop.ts). A thread terminated anywhere holds nothing unrecorded.
 */
import type { Arena } from '../arena/arena.js';
import { linkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { Errors } from '../errors.js';
import { fenceGet } from './core.js';
import { dropRef, pushRelease } from './drop.js';
import type { Fence } from './fence.js';
import { putFence, putRefusedOrLocked, releaseFenceAt } from './release.js';
import { setTrackedRefs } from './signal.js';

const { LG_COUNT, LG_CAP, LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN, T_LEDGER, T_LEDGER_SPARE, T_LEDGER_SPARE_GEN } = L;
const { BLOCK_HEADER_WORDS } = A;

const FIRST_CAP = 20;

/* ───────────── recording: every entry is written by record() ───────────── */

const HELD = 0; // the caller already holds it
const ALLOC = 1; // allocate the block here
const GET = 2; // take the fence reference here

/**
 * Makes room, does `event` (HELD: nothing; ALLOC: allocates a block of `a` bytes and type `b`;
 * GET: takes a reference on fence `a`), then appends `[kind, value, generation]` with plain writes
 * only, so the event and its record happen in one run. Returns the value (payload word index).
 */
function record(arena: Arena, kind: number, event: number, a: number, b: number): number {
  const lw = ledgerReserve(arena);
  const i32 = arena.i32;
  let value = a;
  if (event === ALLOC) value = arena.allocBlock(a, b) + BLOCK_HEADER_WORDS;
  else if (event === GET) fenceGet(i32, value);
  const n = i32[lw + LG_COUNT];
  const e = lw + LG_ENTRIES + n * LG_STRIDE;
  i32[e + LE_KIND] = kind;
  i32[e + LE_VALUE] = value;
  i32[e + LE_GEN] = i32[value - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[lw + LG_COUNT] = n + 1;
  return value;
}

/**
 * Records that the calling thread holds the object at payload word `value` (its current
 * generation). Threads: the holder. Throws ENOMEM (nothing recorded).
 */
export function ledgerAdd(arena: Arena, kind: number, value: number): void {
  record(arena, kind, HELD, value, 0);
}

/**
 * Allocates a block (`bytes`, block type `type`) recorded as `kind` in the calling thread's ledger
 * in the same run: if the thread dies at any point after, its reaper finds the block. The block is
 * not initialised: the caller's first plain writes after the return are in that run too.
 * Returns the payload word index. Throws ENOMEM (nothing allocated).
 */
export function ledgerAllocBlock(arena: Arena, kind: number, bytes: number, type: number): number {
  return record(arena, kind, ALLOC, bytes, type);
}

/**
 * Takes a new reference on fence `fw` recorded as LGK_FENCE_REF in the same run. Locking: none of
 * its own (callers hold the lock that keeps `fw` alive); call {@link ledgerReserve} first to keep
 * allocation out of that lock. Throws EBADF (no reference left: nothing taken), ENOMEM.
 */
export function ledgerGetRef(arena: Arena, fw: number): void {
  record(arena, L.LGK_FENCE_REF, GET, fw, 0);
}

/**
 * Opens the calling thread's next ledger entry for a fence reference being created: counted at
 * once with value 0 and generation LE_GEN_CREATING, so that the allocation can write the value in
 * its own run (recordAt: the returned entry's LE_VALUE word) and the caller the generation right
 * after initialisation. Until then the reaper reads it with reapCreating. Returns the entry's word
 * index. Throws ENOMEM (nothing opened).
 */
export function ledgerOpenCreating(arena: Arena): number {
  const lw = ledgerReserve(arena);
  const i32 = arena.i32;
  const n = i32[lw + LG_COUNT];
  const e = lw + LG_ENTRIES + n * LG_STRIDE;
  i32[e + LE_KIND] = L.LGK_FENCE_REF;
  i32[e + LE_VALUE] = 0;
  i32[e + LE_GEN] = L.LE_GEN_CREATING;
  i32[lw + LG_COUNT] = n + 1;
  return e;
}

/** Takes back the entry {@link ledgerOpenCreating} opened last, when nothing was allocated. */
export function ledgerAbortCreating(arena: Arena): void {
  const lw = arena.i32[arena.slotBase + T_LEDGER];
  arena.i32[lw + LG_COUNT]--;
}

/**
 * Word index of the most recent entry `[kind, value, gen]` of the calling thread's ledger, moved
 * to the last place (see moveLast), or -1 when it records none. Plain reads and writes.
 */
export function ledgerFind(arena: Arena, kind: number, value: number, gen: number): number {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  const last = moveLast(arena, lw, kind, value, gen);
  return last < 0 ? -1 : lw + LG_ENTRIES + last * LG_STRIDE;
}

/**
 * Makes room for `room` more entries (1 to 3) in the calling thread's ledger (allocating or growing
 * it) and returns its payload word index. Throws ENOMEM.
 */
export function ledgerReserve(arena: Arena, room = 1): number {
  const i32 = arena.i32;
  const sw = arena.slotBase + T_LEDGER;
  let lw = i32[sw];
  if (lw === 0) {
    lw = arena.allocBlock((BLOCK_HEADER_WORDS + LG_ENTRIES + FIRST_CAP * LG_STRIDE) * 4, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
    // Installed in the run that allocated it (no call between): a reaper always finds it.
    i32[lw + LG_COUNT] = 0;
    i32[lw + LG_CAP] = 0;
    i32[sw] = lw;
    i32[lw + LG_CAP] = capacityOf(arena, lw);
  }
  // One unsigned compare: a corrupted (negative) count takes this path too, where it is checked.
  if (i32[lw + LG_COUNT] >>> 0 > i32[lw + LG_CAP] - room) {
    const left = compact(arena, lw);
    if (left > i32[lw + LG_CAP] >>> 1 || left > i32[lw + LG_CAP] - room) lw = grow(arena, lw, left);
  }
  return lw;
}

/**
 * The entry count of ledger block `lw`, checked: the count and the block's own capacity word are
 * read from shared memory, and a corrupted one would send the walks below past the block's end.
 * The block's type and capacity are checked once per block the thread installs (the arena view
 * keeps them until grow or a free retires the block); the count, every time. Throws
 * ENOTRECOVERABLE when `lw` is no live ledger block or the count is out of its bounds.
 */
export function entryCount(arena: Arena, lw: number): number {
  const i32 = arena.i32;
  let cap = arena.ledgerSeenCap;
  if (lw !== arena.ledgerSeen) {
    linkedPayload(arena, lw, A.BlockType.INTERNAL, 'a thread\'s reference ledger');
    cap = capacityOf(arena, lw);
    if (lw === i32[arena.slotBase + T_LEDGER]) {
      arena.ledgerSeen = lw;
      arena.ledgerSeenCap = cap;
    }
  }
  const n = i32[lw + LG_COUNT];
  // The capacity word may still be 0 (a thread terminated while installing a new ledger), never more.
  if (!(n >= 0 && n <= cap && i32[lw + LG_CAP] >= 0 && i32[lw + LG_CAP] <= cap)) throw Errors.corruptArena(`the ledger @${lw * 4} counts ${n} of ${i32[lw + LG_CAP]} entries; its block holds ${cap}`);
  return n;
}

/** Entries that fit in ledger block `lw`. */
function capacityOf(arena: Arena, lw: number): number {
  return Math.floor((arena.payloadBytes(lw - BLOCK_HEADER_WORDS) / 4 - LG_ENTRIES) / LG_STRIDE);
}

/**
 * Moves the ledger to a block twice as large. Each block in flight sits in the slot's spare word
 * from the run that allocates or unlinks it to its end, so a terminate() anywhere leaks neither.
 */
function grow(arena: Arena, lw: number, n: number): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const cap = Math.max(FIRST_CAP, i32[lw + LG_CAP] * 2);
  const nw = arena.allocBlock((BLOCK_HEADER_WORDS + LG_ENTRIES + cap * LG_STRIDE) * 4, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
  i32[sb + T_LEDGER_SPARE_GEN] = i32[nw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + T_LEDGER_SPARE] = nw;
  i32.copyWithin(nw + LG_ENTRIES, lw + LG_ENTRIES, lw + LG_ENTRIES + n * LG_STRIDE);
  i32[nw + LG_COUNT] = n;
  i32[nw + LG_CAP] = capacityOf(arena, nw);
  // Swap in one run: the slot names the new block, the spare the old one.
  i32[sb + T_LEDGER_SPARE_GEN] = i32[lw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + T_LEDGER_SPARE] = lw;
  i32[sb + T_LEDGER] = nw;
  arena.ledgerSeen = 0;
  arena.freeBlock(lw - BLOCK_HEADER_WORDS);
  i32[sb + T_LEDGER_SPARE] = 0;
  return nw;
}

/* ───────────── forgetting ───────────── */

/**
 * Index of the most recent entry `[kind, value, gen]` in the calling thread's ledger `lw` moved to
 * the last place (swapped with the entry there: the ledger holds the same set), or -1.
 */
function moveLast(arena: Arena, lw: number, kind: number, value: number, gen: number): number {
  const i32 = arena.i32;
  const n = lw === 0 ? 0 : entryCount(arena, lw);
  for (let j = n - 1; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    if (i32[e + LE_KIND] === kind && i32[e + LE_VALUE] === value && i32[e + LE_GEN] === gen) {
      if (j === n - 1) return j;
      const last = lw + LG_ENTRIES + (n - 1) * LG_STRIDE;
      i32[e + LE_KIND] = i32[last + LE_KIND];
      i32[e + LE_VALUE] = i32[last + LE_VALUE];
      i32[e + LE_GEN] = i32[last + LE_GEN];
      i32[last + LE_KIND] = kind;
      i32[last + LE_VALUE] = value;
      i32[last + LE_GEN] = gen;
      return n - 1;
    }
  }
  return -1;
}

/**
 * Removes the most recent entry equal to `[kind, value, gen]` (the calling thread's). Returns
 * whether it was there. An emptied ledger stays allocated (see the check hook below).
 */
export function ledgerRemove(arena: Arena, kind: number, value: number, gen: number): boolean {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  const last = moveLast(arena, lw, kind, value, gen);
  if (last < 0) return false;
  i32[lw + LG_COUNT] = last;
  return true;
}

/**
 * Puts a reference on fence `fw` recorded (as `kind`, LGK_FENCE_REF by default, at `gen`) in the
 * calling thread's ledger and forgets the entry in the drop's run (see dropRef): a thread
 * terminated here still records a reference it holds (the reaper puts it), or neither records nor
 * holds it. The last reference releases the fence (`view` handed to ops.release). Returns false
 * when no such entry was recorded (nothing is put). Throws as a put (EBADF, EINVAL, EDEADLK:
 * nothing changes, the entry stays).
 */
export function ledgerPutRef(arena: Arena, fw: number, gen: number, view?: Fence, kind: number = L.LGK_FENCE_REF): boolean {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  const last = moveLast(arena, lw, kind, fw, gen);
  if (last < 0) return false;
  if (putRefusedOrLocked(arena, fw, lw + LG_COUNT, last)) return true;
  const d = pushRelease(arena, fw);
  const old = dropRef(arena, fw, d, lw + LG_COUNT, last);
  if (old < 1) {
    Atomics.add(i32, fw + L.F_REFCOUNT, 1);
    i32[lw + LG_COUNT] = last + 1;
    throw Errors.badHandle('fence', arena.handleOf(fw - BLOCK_HEADER_WORDS), `putTracked on a fence with refcount ${old}`);
  }
  if (old === 1) releaseFenceAt(arena, fw, d, view);
  return true;
}

/**
 * Fence.put's check: when the calling thread's ledger records a reference on fence `fw` (at `gen`),
 * puts it through {@link ledgerPutRef} and returns true; else false (the caller puts it plainly).
 * References are not told apart, so a thread that holds a tracked and an untracked one drops the
 * tracked one first: its ledger never records more references than it holds, which its reaper or
 * detach() would drop a second time. Throws as ledgerPutRef.
 */
export function ledgerPutIfTracked(arena: Arena, fw: number, gen: number, view: Fence): boolean {
  const lw = arena.i32[arena.slotBase + T_LEDGER];
  return lw !== 0 && arena.i32[lw + LG_COUNT] !== 0 && ledgerPutRef(arena, fw, gen, view);
}

/**
 * Forgets one record of a reference on fence `fw` (at its current generation) in the calling
 * thread's ledger, if there is one: for a call that takes the caller's reference over (a container,
 * a chain walk), which holds it untracked from then on. Called before the take-over: a thread
 * terminated in between leaks that reference, never drops it twice. Plain reads and writes.
 */
export function ledgerForgetRef(arena: Arena, fw: number): void {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + T_LEDGER];
  if (lw !== 0 && i32[lw + LG_COUNT] !== 0) ledgerRemove(arena, L.LGK_FENCE_REF, fw, i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK);
}

/** Frees the calling thread's emptied ledger block (see freeInFlight). */
function freeLedger(arena: Arena): void {
  arena.ledgerSeen = 0;
  freeInFlight(arena, arena.slotBase + T_LEDGER);
}

/**
 * Frees the block whose payload word `i32[at]` names (nothing when 0) and clears `at`, kill-safe:
 * the block moves from `at` to the slot's spare word in one run, and leaves it once freed, so a
 * thread terminated at any point leaves it in `at` (its site frees it again) or in the spare (the
 * reaper frees it if the free had not committed), never nowhere and never freed twice.
 * Threads: the site's owner (a reaper finishing a dead thread's site too).
 */
export function freeInFlight(arena: Arena, at: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const w = i32[at];
  if (w === 0) return;
  i32[sb + T_LEDGER_SPARE_GEN] = i32[w - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  i32[sb + T_LEDGER_SPARE] = w;
  i32[at] = 0;
  arena.freeBlock(w - BLOCK_HEADER_WORDS);
  i32[sb + T_LEDGER_SPARE] = 0;
}

/**
 * Drops entries whose block (payload word `value`) is no longer live at `generation` — objects
 * finished by other threads, transit records their receivers claimed — and frees the ledger block
 * when nothing is left (so `arena.check()` sees no leak once a thread holds nothing). Returns the
 * number of entries left.
 */
export function ledgerCompact(arena: Arena): number {
  const lw = arena.i32[arena.slotBase + T_LEDGER];
  if (lw === 0) return 0;
  const n = compact(arena, lw);
  if (n === 0) freeLedger(arena);
  return n;
}

/** {@link ledgerCompact} of the calling thread's ledger `lw`, which stays allocated. */
function compact(arena: Arena, lw: number): number {
  const i32 = arena.i32;
  let n = entryCount(arena, lw);
  for (let j = n - 1; j >= 0; j--) {
    const e = lw + LG_ENTRIES + j * LG_STRIDE;
    if (arena.isLive(i32[e + LE_VALUE] - BLOCK_HEADER_WORDS, i32[e + LE_GEN])) continue;
    const last = lw + LG_ENTRIES + (n - 1) * LG_STRIDE;
    // The last entry moved over the stale one and the count lowered in one run of plain writes
    // (no call, no back-edge between): a terminate() never leaves the moved entry counted twice.
    i32[e + LE_KIND] = i32[last + LE_KIND];
    i32[e + LE_VALUE] = i32[last + LE_VALUE];
    i32[e + LE_GEN] = i32[last + LE_GEN];
    i32[lw + LG_COUNT] = --n;
  }
  return n;
}

/** Entries in the calling thread's ledger (stale ones included until compacted). */
export function ledgerSize(arena: Arena): number {
  const lw = arena.i32[arena.slotBase + T_LEDGER];
  return lw === 0 ? 0 : arena.i32[lw + LG_COUNT];
}

// A deferred callback list holds a tracked reference on its fence (src/fence/signal.ts deferHolding).
// Its record may be gone when it is put: a put() of the thread's own, meanwhile, dropped the fence's
// tracked reference first (ledgerPutIfTracked). The list's reference is then an untracked one.
setTrackedRefs(ledgerGetRef, (arena, fw, gen) => ledgerPutRef(arena, fw, gen) || (putFence(arena, fw), true));
