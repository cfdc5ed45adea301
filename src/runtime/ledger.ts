/**
 * Tracked references, the public face of the reference ledger (src/fence/ledger.ts): a thread
 * records the fence references it holds, so that if it dies (worker.terminate(), a crash) the
 * reaper puts them. {@link importFd} takes and records a reference from a sync-file fd in one step.
 * Fence.createTracked and Fence.receive (src/fence/handover.ts) hand out references recorded so
 * from the start; {@link putTracked} puts any of them.
 */
import type { Arena } from '../arena/arena.js';
import * as FL from '../fence/layout.js';
import type { Fence } from '../fence/fence.js';
import { fenceView } from '../fence/fence.js';
import { ledgerAdd, ledgerReserve } from '../fence/ledger.js';
import { syncFileFence } from '../sync/fdtable.js';

export { ledgerCompact, ledgerSize } from '../fence/ledger.js';

/**
 * Records that the calling thread holds one reference on `fence` (one it got from create, get or
 * SyncFile.getFence): if the thread dies, the reaper puts it. Returns the fence.
 * Threads: the holder. Throws EBADF on a released fence, ENOMEM.
 */
export function trackRef(fence: Fence): Fence {
  fence.refcount; // validates the view (EBADF on a released fence)
  ledgerAdd(fence.arena, FL.LGK_FENCE_REF, fence.fw);
  return fence;
}

/**
 * Puts a reference recorded by {@link trackRef} and forgets it, in one run (see ledgerPutRef).
 * Threads: the holder. Throws EINVAL when the calling thread recorded no reference on `fence`
 * (nothing is put), EBADF on a released fence.
 */
export function putTracked(fence: Fence): void {
  fence.putTracked();
}

/**
 * Imports a sync-file fd as a tracked reference: SyncFile.getFence and trackRef in one step, the
 * reference taken and recorded in one run (see ledgerGetRef), so a thread terminated at any point
 * either holds no reference or one its reaper will drop. Room in the ledger is made first, outside
 * the fd entry's lock. Threads: the importer. Returns the fence (put it with putTracked).
 * Throws EBADF (fd not open), ENOMEM.
 */
export function importFd(arena: Arena, fd: number): Fence {
  ledgerReserve(arena);
  return fenceView(arena, syncFileFence(arena, fd, true));
}
