/**
 * Tracked references, the public face of the reference ledger (src/fence/ledger.ts): a thread
 * records the fence references it holds, so that if it dies (worker.terminate(), a crash) the
 * reaper puts them. {@link importFd} takes and records a reference from a sync-file fd in one step.
 * Fence.createTracked and Fence.receive (src/fence/handover.ts) hand out references recorded so
 * from the start; {@link putTracked} puts any of them.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { BLOCK_HEADER_WORDS } from '../arena/layout.js';
import { Errors } from '../errors.js';
import * as FL from '../fence/layout.js';
import type { Fence } from '../fence/fence.js';
import { fenceView } from '../fence/fence.js';
import { entryCount, ledgerAdd, ledgerCompact as compactAt, ledgerReserve, ledgerSize as sizeAt } from '../fence/ledger.js';
import { syncFileFence } from '../sync/fdtable.js';
import { fenceArgOf } from './args.js';

/**
 * Records that the calling thread holds one reference on `fence` (one it got from create, get or
 * SyncFile.getFence): if the thread dies, the reaper puts it. Returns the fence.
 * Threads: the holder. Throws EINVAL (not a Fence; the calling thread's ledger already records as
 * many references on `fence` as it has: none is left for the caller to hold untracked), EBADF on a
 * released fence, ENOMEM; nothing is recorded on a throw.
 */
export function trackRef(fence: Fence): Fence {
  const refs = fenceArgOf(fence, 'trackRef').refcount;
  if (trackedRefs(fence.arena, fence.fw) >= refs)
    throw Errors.invalid(`trackRef: the calling thread already tracks ${refs === 1 ? 'the only reference' : `all ${refs} references`} on this fence`);
  ledgerAdd(fence.arena, FL.LGK_FENCE_REF, fence.fw);
  return fence;
}

/** Live entries of the calling thread's ledger that record a reference on fence `fw` (plain reads). */
function trackedRefs(arena: Arena, fw: number): number {
  const i32 = arena.i32;
  const lw = i32[arena.slotBase + FL.T_LEDGER];
  if (lw === 0) return 0;
  let n = 0;
  for (let j = entryCount(arena, lw) - 1; j >= 0; j--) {
    const e = lw + FL.LG_ENTRIES + j * FL.LG_STRIDE;
    if (i32[e + FL.LE_KIND] === FL.LGK_FENCE_REF && i32[e + FL.LE_VALUE] === fw && arena.isLive(fw - BLOCK_HEADER_WORDS, i32[e + FL.LE_GEN])) n++;
  }
  return n;
}

/**
 * Puts a reference recorded by {@link trackRef} and forgets it, in one run (see ledgerPutRef).
 * Threads: the holder. Throws EINVAL when the calling thread recorded no reference on `fence`
 * (nothing is put) or for a value that is not a Fence, EBADF on a released fence.
 */
export function putTracked(fence: Fence): void {
  fenceArgOf(fence, 'putTracked').putTracked();
}

/**
 * Imports a sync-file fd as a tracked reference: SyncFile.getFence and trackRef in one step, the
 * reference taken and recorded in one run (see ledgerGetRef), so a thread terminated at any point
 * either holds no reference or one its reaper will drop. Room in the ledger is made first, outside
 * the fd entry's lock. Threads: the importer. Returns the fence (put it with putTracked).
 * Throws EINVAL (not an Arena), EBADF (fd not open; a ledger made for it is freed again), ENOMEM.
 */
export function importFd(arena: Arena, fd: number): Fence {
  const had = arenaArg(arena, 'importFd').i32[arena.slotBase + FL.T_LEDGER] !== 0;
  ledgerReserve(arena);
  try {
    return fenceView(arena, syncFileFence(arena, fd, true));
  } catch (e) {
    // A refused fd leaves nothing behind: not the ledger the reservation may have just made, and
    // not one the thread had before either (an empty ledger it kept was freed here).
    if (!had && sizeAt(arena) === 0) compactAt(arena);
    throw e;
  }
}

/**
 * Entries in the calling thread's ledger (stale ones included until {@link ledgerCompact}).
 * Threads: the owner. Throws EINVAL (not an Arena).
 */
export function ledgerSize(arena: Arena): number {
  return sizeAt(arenaArg(arena, 'ledgerSize'));
}

/**
 * Drops the calling thread's stale ledger entries (objects finished by other threads) and frees its
 * ledger when nothing is left. Returns the entries left. Threads: the owner. Throws EINVAL (not an Arena).
 */
export function ledgerCompact(arena: Arena): number {
  return compactAt(arenaArg(arena, 'ledgerCompact'));
}
