/**
 * sync_file (kernel drivers/dma-buf/sync_file.c): an fd table in the arena. An fd is a plain
 * integer `generation * FD_INDEX_SCALE + entry` that any worker can use; the entry holds one
 * reference on its fence, an optional name block and the slot of the thread that created it.
 *
 * Concurrency: every lookup (getFence, info, merge, wait) and close of an entry serialise on the
 * entry's own robust lock word, so a close racing a lookup either happens before it (EBADF) or
 * after it took its fence reference — never in between. create claims a free entry with one CAS on
 * its state word and publishes it (LIVE) only once filled in. Generations survive close, so a
 * closed fd whose entry was reused is rejected (EBADF), not followed.
 */
import type { Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { mergeFences, unwrapFences } from '../containers/unwrap.js';
import { Errors, FenceError } from '../errors.js';
import { fenceGet, pushRelease, seqnoOf } from '../fence/core.js';
import { Fence, fenceView, putFence, releaseFenceAt } from '../fence/fence.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import type { WaitOptions } from '../fence/wait.js';
import { checkName, readName, writeName } from './names.js';

const { FD_STATE, FD_FENCE, FD_OWNER, FD_NAME, FD_LOCK, FD_STRIDE, FDS_FREE, FDS_CLAIMED, FDS_LIVE, FDS_STATE_MASK, FDS_GEN_SHIFT, FDS_GEN_MASK, FD_INDEX_SCALE } = L;
const { BLOCK_HEADER_WORDS } = A;

/** Entry locks are always the futex kind: short critical sections, sleepers do not burn a core. */
const ENTRY_LOCK = K.LK_FUTEX;
const NAME_BLOCK = A.BLOCK_HEADER_BYTES + L.NAME_WORDS * 4;

/** One unwrapped fence of a sync file (kernel `struct sync_fence_info`). */
export interface SyncFenceInfo {
  driverName: string;
  timelineName: string;
  /** 0 active, 1 signaled, negative errno when signaled with an error. */
  status: number;
  /** Signal time (monotonic ns) once signaled, else undefined. */
  timestamp: bigint | undefined;
}

/** Kernel `struct sync_file_info` with its fences. */
export interface SyncFileInfo {
  name: string;
  /** 0 active, 1 all signaled, negative errno: the first fence that is not signaled OK decides. */
  status: number;
  fences: SyncFenceInfo[];
}

/* ───────────── handle level ───────────── */

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
 * Takes a new reference on the fence behind `fd` and returns its payload word index.
 * Locking: takes and drops the entry lock. Threads: any attached thread.
 * Throws EBADF for a closed, stale or forged fd (nothing changes).
 */
export function syncFileFence(arena: Arena, fd: number, track = false): number {
  const e = entryOf(arena, fd, genScratch);
  const gen = genScratch[0];
  const i32 = arena.i32;
  lockEntry(arena, e);
  let fw = 0;
  try {
    if (openLocked(i32, e, gen)) {
      fw = i32[e + FD_FENCE];
      fenceGet(i32, fw);
      // Tracked import: record the reference in the thread's ledger (room reserved by the caller)
      // with no call after the increment, so a terminate() cannot land between taking and recording.
      if (track) {
        const lw = i32[arena.slotBase + FL.T_LEDGER];
        const n = i32[lw + FL.LG_COUNT];
        const le = lw + FL.LG_ENTRIES + n * FL.LG_STRIDE;
        i32[le + FL.LE_KIND] = FL.LGK_FENCE_REF;
        i32[le + FL.LE_VALUE] = fw;
        i32[le + FL.LE_GEN] = i32[fw - A.BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
        i32[lw + FL.LG_COUNT] = n + 1;
      }
    }
  } finally {
    unlockEntry(arena, e);
  }
  if (fw === 0) throw Errors.badHandle('sync_file fd', fd, 'not open (closed, or its entry was reused)');
  return fw;
}

/**
 * Installs fence `fw` (the caller's reference is not consumed: the fd takes its own) in a free
 * entry and returns the fd. Threads: any. Throws EMFILE when the table is full, ENOMEM when the
 * name does not fit in the arena (nothing changes either way).
 */
function install(arena: Arena, fw: number, name: string | undefined): number {
  const i32 = arena.i32;
  let nameW = 0;
  if (name) {
    nameW = arena.allocBlock(NAME_BLOCK, A.BlockType.SYNC_FILE) + BLOCK_HEADER_WORDS;
    writeName(arena, nameW, name);
  }
  // The caller holds a reference (so it stays ≥ 1 while we look): refuse a released fence now.
  if (Atomics.load(i32, fw + FL.F_REFCOUNT) <= 0) {
    if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
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
    // Each Atomics op starts a run of plain writes that records what it did (see pushRelease in
    // fence/core.ts): the claim names its owner, the reference names its fence and the name block.
    // A claimer terminated before LIVE leaves a CLAIMED entry its reaper can undo (closeFdsOf).
    if (Atomics.compareExchange(i32, e + FD_STATE, w, (gen << FDS_GEN_SHIFT) | FDS_CLAIMED) !== w) continue;
    i32[e + FD_OWNER] = arena.slot;
    i32[e + FD_FENCE] = 0;
    i32[e + FD_NAME] = 0;
    Atomics.add(i32, fw + FL.F_REFCOUNT, 1);
    i32[e + FD_FENCE] = fw;
    i32[e + FD_NAME] = nameW;
    // Publish last: a lookup that sees LIVE reads the fields written above.
    Atomics.store(i32, e + FD_STATE, (gen << FDS_GEN_SHIFT) | FDS_LIVE);
    return gen * FD_INDEX_SCALE + index;
  }
  if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
  throw Errors.tooManyFiles(cap);
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
    if (!openLocked(i32, e, gen) || (owner >= 0 && i32[e + FD_OWNER] !== owner)) return false;
    fw = i32[e + FD_FENCE];
    nameW = i32[e + FD_NAME];
    // The drop, then the entry's fence cleared, in one run (see pushRelease): a closer terminated
    // before the entry is freed leaves it half closed, which the reaper finishes.
    depth = pushRelease(arena, fw);
    last = Atomics.sub(i32, fw + FL.F_REFCOUNT, 1) === 1;
    i32[e + FD_FENCE] = 0;
    if (!last) i32[arena.slotBase + FL.T_RELEASE_DEPTH] = depth;
    else if (depth < FL.RELEASE_CAP) i32[arena.slotBase + FL.T_RELEASE + 2 * depth + 1] |= FL.REL_DROPPED;
    Atomics.store(i32, e + FD_STATE, (gen << FDS_GEN_SHIFT) | FDS_FREE);
    i32[e + FD_NAME] = 0;
  } finally {
    unlockEntry(arena, e);
  }
  try {
    if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
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
    if (i32[e + FD_OWNER] !== slot) continue;
    if ((w & FDS_STATE_MASK) === FDS_LIVE) {
      if (closeEntry(arena, e, w >>> FDS_GEN_SHIFT, slot)) n++;
    } else if ((w & FDS_STATE_MASK) === FDS_CLAIMED && slot !== arena.slot) {
      // Claimed by the dead thread inside install and never published: undo it.
      const fw = i32[e + FD_FENCE];
      const nameW = i32[e + FD_NAME];
      i32[e + FD_FENCE] = 0;
      i32[e + FD_NAME] = 0;
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
      Atomics.store(i32, e + FD_STATE, (w & ~FDS_STATE_MASK) | FDS_FREE);
      i32[e + FD_NAME] = 0;
    } finally {
      unlockEntry(arena, e);
    }
    if (nameW) arena.freeBlock(nameW - BLOCK_HEADER_WORDS);
  }
}

onReap(ReapStage.FILES, (arena, slot) => {
  closeFdsOf(arena, slot);
  if (slot !== arena.slot) finishHalfClosed(arena);
});

/* ───────────── public API ───────────── */

function checkArena(arena: Arena): void {
  if (arena === null || typeof arena !== 'object' || !(arena.i32 instanceof Int32Array))
    throw Errors.invalid('expected an Arena');
}

function fenceArg(arena: Arena, fence: Fence): number {
  if (!(fence instanceof Fence)) throw Errors.invalid('SyncFile.create needs a Fence');
  if (fence.arena.buffer !== arena.buffer) throw Errors.invalid('the fence belongs to another arena');
  // Fence.fromHandle re-validates the view: a released fence → EBADF before anything changes.
  return Fence.fromHandle(arena, fence.handle).fw;
}

/** Default sync-file name (kernel sync_file_get_name): `<driver>-<timeline><context>-<seqno>`. */
function defaultName(f: Fence): string {
  return `${f.driverName}-${f.timelineName}${f.context}-${seqnoOf(f.arena.i32, f.fw)}`;
}

/**
 * sync_file: fds naming one fence each, usable from any worker of the arena (kernel sync_file).
 * Every function validates the fd first: a closed, stale or forged fd throws EBADF and changes
 * nothing.
 */
export class SyncFile {
  private constructor() {}

  /**
   * Exports `fence` as a new fd (kernel sync_file_create). The fd takes its own reference; the
   * caller keeps its own. `name` (optional, cut to 31 UTF-8 bytes) replaces the default name.
   * Threads: any attached thread; the fd belongs to it: it is closed when that thread detaches or
   * is reaped (a dead worker's fds, like a dead process's). Locking: takes none but the allocator's.
   * Returns the fd. Throws EINVAL (not a Fence of this arena, name not a string), EBADF (released
   * fence), EMFILE (table full), ENOMEM.
   */
  static create(arena: Arena, fence: Fence, name?: string): number {
    checkArena(arena);
    checkName(name, 'sync_file');
    return install(arena, fenceArg(arena, fence), name);
  }

  /**
   * A new reference to the fd's fence (kernel sync_file_get_fence); the caller puts it.
   * Threads: any attached thread. Locking: the entry lock, briefly.
   * Returns the Fence. (Every fd of the table is a sync file, so there is no null case here.)
   * Throws EBADF for a closed, stale or forged fd.
   */
  static getFence(arena: Arena, fd: number): Fence | null {
    checkArena(arena);
    return fenceView(arena, syncFileFence(arena, fd));
  }

  /**
   * Closes the fd and drops its fence reference. Threads: any attached thread (not only the
   * creator). Throws EBADF for an fd that is not open (a second close included).
   */
  static close(arena: Arena, fd: number): void {
    checkArena(arena);
    const e = entryOf(arena, fd, genScratch);
    if (!closeEntry(arena, e, genScratch[0], -1)) throw Errors.badHandle('sync_file fd', fd, 'not open (closed, or its entry was reused)');
  }

  /**
   * Merges two sync files into a new fd holding the unwrapped union of their fences, the later
   * point per context (kernel SYNC_IOC_MERGE with dma_fence_unwrap_merge). fd1 and fd2 stay open.
   * Threads: any attached thread; the new fd belongs to it.
   * Returns the new fd. Throws EBADF (fd1 not open), EINVAL (`flags` not 0, name not a string),
   * ENOENT (fd2 is not an open sync file), EMFILE, ENOMEM — in the kernel's order.
   */
  static merge(arena: Arena, fd1: number, fd2: number, name?: string, flags = 0): number {
    checkArena(arena);
    const fw1 = syncFileFence(arena, fd1);
    let fw2 = 0;
    try {
      if (flags !== 0) throw Errors.invalid(`merge flags must be 0, got ${String(flags)}`);
      checkName(name, 'merged sync_file');
      try {
        fw2 = syncFileFence(arena, fd2);
      } catch (e) {
        if (e instanceof FenceError && e.code === 'EBADF') throw Errors.noEntry(`merge: fd2 ${String(fd2)} is not an open sync_file`);
        throw e;
      }
      const merged = mergeFences(arena, [fenceView(arena, fw1), fenceView(arena, fw2)]);
      try {
        // The kernel always copies the user's name; an empty one means "use the default".
        return install(arena, merged.fw, name);
      } finally {
        merged.put();
      }
    } finally {
      try {
        if (fw2) putFence(arena, fw2);
      } finally {
        putFence(arena, fw1);
      }
    }
  }

  /**
   * The fd's name, status and unwrapped fences (kernel SYNC_IOC_FILE_INFO). Status: the first
   * fence (in unwrap order) that is active or failed decides it, else 1. Timestamps are set for
   * signaled fences only. Threads: any attached thread. Locking: the entry lock briefly, then
   * each fence's lock for its status. Throws EBADF.
   */
  static info(arena: Arena, fd: number): SyncFileInfo {
    checkArena(arena);
    const e = entryOf(arena, fd, genScratch);
    const gen = genScratch[0];
    const i32 = arena.i32;
    let fw = 0;
    let name = '';
    lockEntry(arena, e);
    try {
      if (openLocked(i32, e, gen)) {
        fw = i32[e + FD_FENCE];
        fenceGet(i32, fw);
        // The name block belongs to the entry: read it before the lock lets a close free it.
        const nameW = i32[e + FD_NAME];
        if (nameW) name = readName(arena, nameW);
      }
    } finally {
      unlockEntry(arena, e);
    }
    if (fw === 0) throw Errors.badHandle('sync_file fd', fd, 'not open (closed, or its entry was reused)');
    const f = fenceView(arena, fw);
    try {
      if (!name) name = defaultName(f);
      const fences: SyncFenceInfo[] = [];
      let status = 1;
      for (const u of unwrapFences(f)) {
        const s = u.status();
        fences.push({
          driverName: u.driverName,
          timelineName: u.timelineName,
          status: s,
          timestamp: s !== 0 ? u.timestamp : undefined,
        });
        if (status > 0) status = s;
      }
      if (fences.length === 0) status = f.status();
      return { name, status, fences };
    } finally {
      f.put();
    }
  }

  /**
   * Waits until the fd's fence signals (kernel poll on a sync file: ready when signaled, errors
   * included). Threads: any; blocks the calling thread (on the main thread: its event loop).
   * Returns true when signaled, false on timeout (`timeoutMs` 0 polls). Throws EBADF, EINVAL
   * (bad timeout).
   */
  static wait(arena: Arena, fd: number, timeoutMs: number): boolean {
    checkArena(arena);
    const f = fenceView(arena, syncFileFence(arena, fd));
    try {
      return f.wait(timeoutMs);
    } finally {
      f.put();
    }
  }

  /**
   * Like {@link SyncFile.wait} without blocking the event loop (the process stays alive while it
   * waits). `options.signal` (an AbortSignal) cancels it: the promise rejects with the signal's
   * reason, and the fence reference the wait held is put.
   */
  static async waitAsync(arena: Arena, fd: number, timeoutMs: number, options?: WaitOptions): Promise<boolean> {
    checkArena(arena);
    const f = fenceView(arena, syncFileFence(arena, fd));
    try {
      return await f.waitAsync(timeoutMs, options);
    } finally {
      f.put();
    }
  }

  /**
   * Asks the fd's fence to be signaled by `ns` (monotonic ns) (kernel SYNC_IOC_SET_DEADLINE): the
   * fence's ops.setDeadline; an array (a merged file) passes it to its fences, a sw_sync point
   * records it (SwTimeline.getDeadline reads it back). A signaled fence ignores it.
   * Threads: any attached thread that registered the fence's ops. Locking: the entry lock, briefly.
   * Throws EBADF (fd not open), EINVAL (ns not a bigint ≥ 0, the ops not registered here).
   */
  static setDeadline(arena: Arena, fd: number, ns: bigint): void {
    checkArena(arena);
    if (typeof ns !== 'bigint' || ns < 0n) throw Errors.invalid('SyncFile.setDeadline needs a bigint ≥ 0 (ns)');
    const f = fenceView(arena, syncFileFence(arena, fd));
    try {
      f.setDeadline(ns);
    } finally {
      f.put();
    }
  }

  /** Open fds in the table (all threads). Threads: any; a snapshot while others create/close. */
  static openCount(arena: Arena): number {
    checkArena(arena);
    const i32 = arena.i32;
    const cap = i32[A.H_TABLE_ENTRIES];
    const table = i32[A.H_TABLE];
    let n = 0;
    for (let index = 0; index < cap; index++)
      if ((Atomics.load(i32, table + index * FD_STRIDE + FD_STATE) & FDS_STATE_MASK) === FDS_LIVE) n++;
    return n;
  }
}

/** @internal for sw_sync: installs fence `fw` (not consumed) as a new fd. */
export function syncFileInstall(arena: Arena, fw: number, name: string | undefined): number {
  checkName(name, 'sync_file');
  return install(arena, fw, name);
}
