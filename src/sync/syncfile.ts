/**
 * sync_file (kernel drivers/dma-buf/sync_file.c): the SyncFile API over the arena's fd table
 * (src/sync/fdtable.ts) — export a fence as an fd, get it back, close, merge two fds, file info
 * and poll. Every function validates the fd first: a closed, stale or forged fd throws EBADF and
 * changes nothing.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { mergeFences, unwrapFences } from '../containers/unwrap.js';
import { Errors, FenceError, describeValue } from '../errors.js';
import { nsArg, seqnoOf } from '../fence/core.js';
import { Fence, fenceView } from '../fence/fence.js';
import { isFenceView } from '../fence/fencebase.js';
import { putFence } from '../fence/release.js';
import type { WaitOptions } from '../fence/wait.js';
import { closeFd, installFd, openFdCount, syncFileFence } from './fdtable.js';
import { checkName } from './names.js';

/** One unwrapped fence of a sync file (kernel `struct sync_fence_info`). */
export interface SyncFenceInfo {
  /** The fence's driver name ("detached-driver" once signaled). */
  driverName: string;
  /** The fence's timeline name ("signaled-timeline" once signaled). */
  timelineName: string;
  /** 0 active, 1 signaled, negative errno when signaled with an error. */
  status: number;
  /** Signal time (monotonic ns) once signaled, else undefined. */
  timestamp: bigint | undefined;
}

/** Kernel `struct sync_file_info` with its fences. */
export interface SyncFileInfo {
  /** The sync file's name: the one given at create or merge, else `<driver>-<timeline><context>-<seqno>` of its fence. */
  name: string;
  /** 0 active, 1 all signaled, negative errno: the first fence that is not signaled OK decides. */
  status: number;
  /** Its fences, unwrapped (containers replaced by what they contain). */
  fences: SyncFenceInfo[];
}

/* ───────────── public API ───────────── */

/** Throws EINVAL unless `arena` is an Arena view (EBADF for a detached one), naming `SyncFile.<where>`. */
function checkArena(arena: Arena, where: string): void {
  arenaArg(arena, `SyncFile.${where}`);
}

function fenceArg(arena: Arena, fence: Fence): number {
  if (!isFenceView(fence)) throw Errors.invalid(`SyncFile.create needs a Fence, got ${describeValue(fence)}`);
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
    checkArena(arena, 'create');
    checkName(name, 'sync_file');
    return installFd(arena, fenceArg(arena, fence), name);
  }

  /**
   * A new reference to the fd's fence (kernel sync_file_get_fence); the caller puts it.
   * Threads: any attached thread. Locking: the entry lock, briefly.
   * Returns the Fence. (Every fd of the table is a sync file, so there is no null case here.)
   * Throws EBADF for a closed, stale or forged fd.
   */
  static getFence(arena: Arena, fd: number): Fence | null {
    checkArena(arena, 'getFence');
    return fenceView(arena, syncFileFence(arena, fd));
  }

  /**
   * Closes the fd and drops its fence reference. Threads: any attached thread (not only the
   * creator). Throws EBADF for an fd that is not open (a second close included).
   */
  static close(arena: Arena, fd: number): void {
    checkArena(arena, 'close');
    closeFd(arena, fd);
  }

  /**
   * Merges two sync files into a new fd holding the unwrapped union of their fences, the later
   * point per context (kernel SYNC_IOC_MERGE with dma_fence_unwrap_merge). fd1 and fd2 stay open.
   * Threads: any attached thread; the new fd belongs to it.
   * Returns the new fd. Throws EBADF (fd1 not open), EINVAL (`flags` not 0, name not a string),
   * ENOENT (fd2 is not an open sync file), EMFILE, ENOMEM — in the kernel's order.
   */
  static merge(arena: Arena, fd1: number, fd2: number, name?: string, flags = 0): number {
    checkArena(arena, 'merge');
    const fw1 = syncFileFence(arena, fd1);
    let fw2 = 0;
    try {
      if (flags !== 0) throw Errors.invalid(`merge flags must be 0, got ${describeValue(flags)}`);
      checkName(name, 'merged sync_file');
      try {
        fw2 = syncFileFence(arena, fd2);
      } catch (e) {
        if (e instanceof FenceError && e.code === 'EBADF') throw Errors.noEntry(`merge: fd2 ${describeValue(fd2)} is not an open sync_file`);
        throw e;
      }
      const merged = mergeFences(arena, [fenceView(arena, fw1), fenceView(arena, fw2)]);
      try {
        // The kernel always copies the user's name; an empty one means "use the default".
        return installFd(arena, merged.fw, name);
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
    checkArena(arena, 'info');
    const names = [''];
    const f = fenceView(arena, syncFileFence(arena, fd, false, names));
    try {
      const name = names[0] || defaultName(f);
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
    checkArena(arena, 'wait');
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
    checkArena(arena, 'waitAsync');
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
   * Throws EBADF (fd not open), EINVAL (ns not a bigint in 0..2^63-1, the ops not registered here).
   */
  static setDeadline(arena: Arena, fd: number, ns: bigint): void {
    checkArena(arena, 'setDeadline');
    nsArg(ns, 'SyncFile.setDeadline');
    const f = fenceView(arena, syncFileFence(arena, fd));
    try {
      f.setDeadline(ns);
    } finally {
      f.put();
    }
  }

  /** Open fds in the table (all threads). Threads: any; a snapshot while others create/close. */
  static openCount(arena: Arena): number {
    checkArena(arena, 'openCount');
    return openFdCount(arena);
  }
}

/** @internal for sw_sync: installs fence `fw` (not consumed) as a new fd. */
export function syncFileInstall(arena: Arena, fw: number, name: string | undefined): number {
  checkName(name, 'sync_file');
  return installFd(arena, fw, name);
}
