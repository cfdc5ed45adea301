/**
 * The sync-file fd table, at handle level (kernel: the process's fd table of sync files, here one
 * table in the arena). An fd is a plain integer `generation * FD_INDEX_SCALE + entry` that any
 * worker can use; the entry holds one reference on its fence, an optional name block and the slot
 * of the thread that created it.
 *
 * Concurrency: every lookup and close of an entry serialise on the entry's own robust lock word,
 * so a close racing a lookup either happens before it (EBADF) or after it took its fence
 * reference — never in between. install claims a free entry with one CAS on its state word and
 * publishes it (LIVE) only once filled in. Generations survive close, so a closed fd whose entry
 * was reused is rejected (EBADF), not followed.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { linkedPayload } from '../arena/handles.js';
import { Errors } from '../errors.js';
import { fenceGet } from '../fence/core.js';
import { dropRef, pushRelease } from '../fence/drop.js';
import { ledgerGetRef } from '../fence/ledger.js';
import { holdsFenceLock } from '../fence/held.js';
import { putFence, putUnderLock, releaseFenceAt } from '../fence/release.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { readName, writeName } from './names.js';
import './linkcheck.js'; // registers the sync layer's part of arena.check()

/**
 * FD_OWNER of a free entry: no thread (owners are slot + 1, so a fresh table's zeroed entries name
 * nobody too). A claimer writes its own right after its compare-exchange, and a dead slot's reaper
 * (closeFdsOf) must not take a new claim of an entry that slot once owned, seen before that
 * write, for its own — nor, in a fresh table, one whose zeroed owner read as slot 0.
 */
const NO_OWNER = 0;

const { FD_STATE, FD_FENCE, FD_OWNER, FD_NAME, FD_LOCK, FD_STRIDE, FDS_FREE, FDS_CLAIMED, FDS_LIVE, FDS_STATE_MASK, FDS_GEN_SHIFT, FDS_GEN_MASK, FD_INDEX_SCALE } = L;
const { BLOCK_HEADER_WORDS } = A;

/** Entry locks are always the futex kind: short critical sections, sleepers do not burn a core. */
const ENTRY_LOCK = K.LK_FUTEX;
const NAME_BLOCK = A.BLOCK_HEADER_BYTES + L.NAME_WORDS * 4;

/**
 * Word index of the entry `fd` names and its generation through `genOut[0]`. Throws EBADF for
 * anything that cannot be an fd of this arena (not a safe integer, below the first fd, entry out
 * of the table). Whether the fd is open is decided under the entry lock.
 */
function entryOf(arena: Arena, fd: number, genOut: Int32Array): number {
  if (typeof fd !== 'number' || !Number.isSafeInteger(fd) || fd < FD_INDEX_SCALE)
    throw Errors.badHandle('sync_file fd', fd, 'not an fd');
  const index = fd % FD_INDEX_SCALE;
  const gen = (fd - index) / FD_INDEX_SCALE;
  const i32 = arena.i32;
  if (index >= i32[A.H_TABLE_ENTRIES] || gen > FDS_GEN_MASK) throw Errors.badHandle('sync_file fd', fd, 'not an fd of this arena');
  genOut[0] = gen;
  return i32[A.H_TABLE] + index * FD_STRIDE;
}

const genScratch = new Int32Array(1);

function lockEntry(arena: Arena, e: number): void {
  acquireWord(arena, e + FD_LOCK, ENTRY_LOCK);
}

function unlockEntry(arena: Arena, e: number): void {
  releaseWord(arena, e + FD_LOCK, ENTRY_LOCK);
}

/**
 * With the entry lock held: is generation `gen` open in entry `e`? A LIVE entry without a fence
 * is half closed (its closer died after dropping the reference; see finishHalfClosed).
 */
function openLocked(i32: Int32Array, e: number, gen: number): boolean {
  return Atomics.load(i32, e + FD_STATE) === ((gen << FDS_GEN_SHIFT) | FDS_LIVE) && i32[e + FD_FENCE] !== 0;
}

/**
 * The fence and name words of open entry `e`, checked (entry lock held): they are read from shared
 * memory, and a corrupted one would take or drop references on, or free, whatever it names.
 * Throws ENOTRECOVERABLE when the fence is no live fence block or the name no live name block.
 */
function entryFence(arena: Arena, e: number): number {
  const i32 = arena.i32;
  const nameW = i32[e + FD_NAME];
  if (nameW !== 0) linkedPayload(arena, nameW, A.BlockType.SYNC_FILE, 'the name of an fd table entry');
  return linkedPayload(arena, i32[e + FD_FENCE], A.BlockType.FENCE, 'the fence of an fd table entry');
}

function notOpen(fd: number): Error {
  return Errors.badHandle('sync_file fd', fd, 'not open (closed, or its entry was reused)');
}

/**
 * Takes a new reference on the fence behind `fd` and returns its payload word index. `track`:
 * the reference is recorded in the calling thread's ledger in the same run (room reserved by the
 * caller). `nameOut` (optional): receives the fd's own name ('' when it has the default one),
 * read while the entry lock keeps a close from freeing it.
 * Locking: takes and drops the entry lock. Threads: any attached thread.
 * Throws EBADF for a closed, stale or forged fd (nothing changes).
 */
export function syncFileFence(arena: Arena, fd: number, track = false, nameOut?: string[]): number {
  const e = entryOf(arena, fd, genScratch);
  const gen = genScratch[0];
  const i32 = arena.i32;
  lockEntry(arena, e);
  let fw = 0;
  try {
    if (openLocked(i32, e, gen)) {
      fw = entryFence(arena, e);
      if (track) ledgerGetRef(arena, fw);
      else fenceGet(i32, fw);
      if (nameOut) nameOut[0] = i32[e + FD_NAME] ? readName(arena, i32[e + FD_NAME]) : '';
    }
  } finally {
    unlockEntry(arena, e);
  }
  if (fw === 0) throw notOpen(fd);
  return fw;
}

/**
 * Installs fence `fw` (the caller's reference is not consumed: the fd takes its own) in a free
 * entry and returns the fd. Threads: any. Throws EBADF (released fence), EMFILE when the table is
 * full, ENOMEM when the name does not fit in the arena (nothing changes in any case).
 */
export function installFd(arena: Arena, fw: number, name: string | undefined): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  let nameW = 0;
  if (name) {
    // In flight in our slot from the run of its allocation until the entry owns it: a thread
    // terminated in between leaves its reaper the block to free (see freeInFlight).
    nameW = arena.allocBlock(NAME_BLOCK, A.BlockType.SYNC_FILE) + BLOCK_HEADER_WORDS;
    i32[sb + FL.T_IN_FLIGHT_GEN] = i32[nameW - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
    i32[sb + FL.T_IN_FLIGHT] = nameW;
    writeName(arena, nameW, name);
  }
  // The caller holds a reference (so it stays ≥ 1 while we look): refuse a released fence now.
  if (Atomics.load(i32, fw + FL.F_REFCOUNT) <= 0) {
    dropName(arena, nameW);
    throw Errors.badHandle('fence', fw, 'the fence was released');
  }
  const cap = i32[A.H_TABLE_ENTRIES];
  const table = i32[A.H_TABLE];
  // Next-fit from a shared cursor: creators spread over the table instead of fighting for entry 0,
  // and a closed entry is not the very next one handed out (stale fds meet a new generation late).
  const start = (Atomics.add(i32, L.H_FD_NEXT, 1) >>> 0) % cap;
  for (let k = 0; k < cap; k++) {
    const index = (start + k) % cap;
    const e = table + index * FD_STRIDE;
    const w = Atomics.load(i32, e + FD_STATE);
    if ((w & FDS_STATE_MASK) !== FDS_FREE) continue;
    let gen = (w >>> FDS_GEN_SHIFT) + 1;
    if (gen > FDS_GEN_MASK) gen = 1;
    // Each Atomics op starts a run of plain writes that records what it did (see
    // src/fence/drop.ts): the claim names its owner, the reference names its fence and the name
    // block. A claimer terminated before LIVE leaves a CLAIMED entry its reaper can undo (closeFdsOf).
    if (Atomics.compareExchange(i32, e + FD_STATE, w, (gen << FDS_GEN_SHIFT) | FDS_CLAIMED) !== w) continue;
    i32[e + FD_OWNER] = arena.me;
    i32[e + FD_FENCE] = 0;
    // The claimed entry owns the name from here (closeFdsOf frees a dead claimer's).
    i32[e + FD_NAME] = nameW;
    i32[sb + FL.T_IN_FLIGHT] = 0;
    Atomics.add(i32, fw + FL.F_REFCOUNT, 1);
    i32[e + FD_FENCE] = fw;
    // Publish last: a lookup that sees LIVE reads the fields written above.
    Atomics.store(i32, e + FD_STATE, (gen << FDS_GEN_SHIFT) | FDS_LIVE);
    return gen * FD_INDEX_SCALE + index;
  }
  dropName(arena, nameW);
  throw Errors.tooManyFiles(cap);
}

/** Frees name block `nameW` (0 none) that sits in the calling thread's in-flight word. */
function dropName(arena: Arena, nameW: number): void {
  if (nameW === 0) return;
  arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
  arena.i32[arena.slotBase + FL.T_IN_FLIGHT] = 0; // after the free's return, no call between
}

/**
 * Closes `fd` and drops its fence reference. Threads: any attached thread (not only the creator).
 * Throws EBADF for an fd that is not open (a second close included).
 */
export function closeFd(arena: Arena, fd: number): void {
  const e = entryOf(arena, fd, genScratch);
  if (!closeEntry(arena, e, genScratch[0], -1)) throw notOpen(fd);
}

/**
 * Closes entry `e` if generation `gen` is open there (owner `owner`, or any when -1): the entry
 * becomes free (generation kept), then its fence reference and name block are dropped outside the
 * lock. Returns false when it was not open.
 */
function closeEntry(arena: Arena, e: number, gen: number, owner: number): boolean {
  const i32 = arena.i32;
  let fw = 0;
  let nameW = 0;
  let last = false;
  let depth = 0;
  lockEntry(arena, e);
  try {
    if (!openLocked(i32, e, gen) || (owner >= 0 && i32[e + FD_OWNER] !== owner + 1)) return false;
    fw = entryFence(arena, e);
    nameW = i32[e + FD_NAME];
    if (holdsFenceLock(arena, fw)) {
      // The caller holds the fence's lock: the last reference cannot be released under it, so the
      // close is refused (EDEADLK) before the entry changes; another one is dropped without release.
      putUnderLock(i32, fw, e + FD_FENCE);
      fw = 0;
    } else {
      // The entry's fence cleared in the drop's run (see dropRef): a closer terminated before the
      // entry is freed leaves it half closed, which the reaper finishes.
      depth = pushRelease(arena, fw);
      last = dropRef(arena, fw, depth, e + FD_FENCE, 0) === 1;
    }
    // The name moves from the entry to our in-flight word, and the owner goes, before the free
    // below: once FREE, installFd may claim the entry (without its lock) and write its own name
    // and owner, which a write of ours after the free would clobber. In the drop's run (plain
    // writes up to the store): a closer terminated at the store leaves a half-closed entry
    // (finishHalfClosed) and the name in flight (freeInFlight).
    if (nameW) {
      i32[arena.slotBase + FL.T_IN_FLIGHT_GEN] = i32[nameW - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
      i32[arena.slotBase + FL.T_IN_FLIGHT] = nameW;
    }
    i32[e + FD_NAME] = 0;
    i32[e + FD_OWNER] = NO_OWNER;
    Atomics.store(i32, e + FD_STATE, (gen << FDS_GEN_SHIFT) | FDS_FREE);
  } finally {
    unlockEntry(arena, e);
  }
  try {
    dropName(arena, nameW);
  } finally {
    if (last) releaseFenceAt(arena, fw, depth);
  }
  return true;
}

/**
 * Closes every fd created by thread slot `slot` (a dead or detaching thread). Returns how many.
 * Threads: the reaper (any live thread) or the detaching thread itself.
 */
export function closeFdsOf(arena: Arena, slot: number): number {
  const i32 = arena.i32;
  const cap = i32[A.H_TABLE_ENTRIES];
  const table = i32[A.H_TABLE];
  let n = 0;
  for (let index = 0; index < cap; index++) {
    const e = table + index * FD_STRIDE;
    const w = Atomics.load(i32, e + FD_STATE);
    if (i32[e + FD_OWNER] !== slot + 1) continue;
    if ((w & FDS_STATE_MASK) === FDS_LIVE) {
      if (closeEntry(arena, e, w >>> FDS_GEN_SHIFT, slot)) n++;
    } else if ((w & FDS_STATE_MASK) === FDS_CLAIMED && slot !== arena.slot) {
      // Claimed by the dead thread inside installFd and never published: undo it.
      const fw = i32[e + FD_FENCE];
      const nameW = i32[e + FD_NAME];
      i32[e + FD_FENCE] = 0;
      i32[e + FD_NAME] = 0;
      i32[e + FD_OWNER] = NO_OWNER;
      Atomics.store(i32, e + FD_STATE, (w & ~FDS_STATE_MASK) | FDS_FREE);
      if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
      if (fw) putFence(arena, fw);
    }
  }
  return n;
}

/**
 * Frees the entries left half closed (LIVE, fence reference already dropped) by closers that died
 * before freeing them. Under each entry's lock: a live closer holds it until the entry is free.
 */
function finishHalfClosed(arena: Arena): void {
  const i32 = arena.i32;
  const cap = i32[A.H_TABLE_ENTRIES];
  const table = i32[A.H_TABLE];
  for (let index = 0; index < cap; index++) {
    const e = table + index * FD_STRIDE;
    const w = Atomics.load(i32, e + FD_STATE);
    if ((w & FDS_STATE_MASK) !== FDS_LIVE || i32[e + FD_FENCE] !== 0) continue;
    let nameW = 0;
    lockEntry(arena, e);
    try {
      if (Atomics.load(i32, e + FD_STATE) !== w || i32[e + FD_FENCE] !== 0) continue;
      nameW = i32[e + FD_NAME];
      // Before the free, as in closeEntry: after it the entry may be claimed again.
      i32[e + FD_NAME] = 0;
      i32[e + FD_OWNER] = NO_OWNER;
      Atomics.store(i32, e + FD_STATE, (w & ~FDS_STATE_MASK) | FDS_FREE);
    } finally {
      unlockEntry(arena, e);
    }
    if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
  }
}

/** A name block the dead thread of `slot` had in flight (allocated, or taken from an entry it closed). */
function freeInFlight(arena: Arena, slot: number): void {
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const nw = i32[b + FL.T_IN_FLIGHT];
  i32[b + FL.T_IN_FLIGHT] = 0;
  if (nw !== 0 && arena.isLive(nw - BLOCK_HEADER_WORDS, i32[b + FL.T_IN_FLIGHT_GEN])) arena.freeBlock(nw - BLOCK_HEADER_WORDS);
}

onReap(ReapStage.FILES, (arena, slot) => {
  closeFdsOf(arena, slot);
  if (slot !== arena.slot) {
    finishHalfClosed(arena);
    freeInFlight(arena, slot);
  }
});

/** Open fds in the table (all threads). Threads: any; a snapshot while others create/close. */
export function openFdCount(arena: Arena): number {
  const i32 = arena.i32;
  const cap = i32[A.H_TABLE_ENTRIES];
  const table = i32[A.H_TABLE];
  let n = 0;
  for (let index = 0; index < cap; index++) if ((Atomics.load(i32, table + index * FD_STRIDE + FD_STATE) & FDS_STATE_MASK) === FDS_LIVE) n++;
  return n;
}
