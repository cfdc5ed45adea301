/**
 * sw_sync (kernel drivers/dma-buf/sw_sync.c): a software timeline with a 32-bit counter. Points are
 * fences on the timeline's context that borrow the timeline's lock — as the kernel's sync_pt does —
 * and keep the timeline struct alive with a reference each, so the borrowed lock never dangles.
 * Points wait on a list sorted by seqno (32-bit wrap-around order); `inc` advances the counter and
 * signals, in order, every point it reached; closing the last open reference signals the rest with
 * -ENOENT.
 *
 * Layout: a TIMELINE block (TL_*) and point blocks (a fence plus PT_* list words), all in the arena.
 * This file is the view, `SwTimeline`; the points are points.ts, closing is timelineclose.ts.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { maxBlocks } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import { LOCK_OWNER_MASK } from '../locks/layout.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { Errors, describeValue } from '../errors.js';
import { contextAlloc } from '../fence/core.js';
import { putFence } from '../fence/release.js';
import { threadId } from 'node:worker_threads';
import { checkName, readName, writeName } from './names.js';
import { lockTimeline, point, pointAtLocked, putCreatedPoint, swSyncOps, unlockTimeline } from './points.js';
import { popTimelineRecord, pushTimelineRecord, signalDue, timelineRecord } from './signaling.js';
import './timelinereap.js'; // registers the reap hook that finishes a dead thread's inc or close
import { syncFileFence } from './fdtable.js';
import { syncFileInstall } from './syncfile.js';
import { closeHoldingNone, dropOwnRef, findOpenRef, getOpenRef, receiveTimeline, shareTimeline, tryGetOpenRef, withdrawTimeline } from './timelineshare.js';
import { ledgerAllocBlock } from '../fence/ledger.js';

const { TL_LOCK, TL_KREF, TL_FILE_REFS, TL_CONTEXT, TL_VALUE, TL_HEAD, TL_TAIL, TL_CLOSED, TL_OWNER, TL_OWNER_SERIAL, TL_NAME, PT_TIMELINE, PT_NEXT, PT_DEADLINE, PT_HAS_DEADLINE } = L;
const { F_FLAGS } = FL;
const { BLOCK_HEADER_WORDS } = A;

const TL_BLOCK = A.BLOCK_HEADER_BYTES + L.TL_WORDS * 4;

/**
 * A software timeline (kernel sw_sync): `createFence(value)` → an fd whose fence signals once the
 * counter reaches `value`; `inc(n)` advances the counter. A view over a TIMELINE block: rebuild it
 * in another worker with {@link SwTimeline.fromHandle}.
 */
export class SwTimeline {
  /** The arena the timeline lives in (this thread's view). */
  readonly arena: Arena;
  /** Plain-integer handle of the timeline block, to post to other workers. */
  readonly handle: number;
  private closedHere = false;

  private constructor(arena: Arena, hw: number) {
    this.arena = arena;
    this.handle = arena.handleOf(hw);
  }

  /**
   * Creates a timeline on a new fence context, counter 0, with one open reference: the caller's,
   * recorded in its ledger in the allocation's run (its reaper closes it if it dies; see
   * timelineshare.ts). `name` (default `thread-<threadId>`, like the kernel's task name) is cut to
   * 31 UTF-8 bytes. Threads: any attached thread. Throws EINVAL (name not a string; or not an Arena), EBADF (a detached arena view), ENOMEM.
   */
  static create(arena: Arena, name?: string): SwTimeline {
    arenaArg(arena, 'SwTimeline.create');
    checkName(name, 'timeline');
    const context = contextAlloc(arena, 1);
    const i32 = arena.i32;
    const tw = ledgerAllocBlock(arena, L.LGK_TIMELINE_REF, TL_BLOCK, A.BlockType.TIMELINE);
    // Every word but the name in the allocation's run (plain writes, no call): the reaper of a
    // thread terminated from here on finds a whole timeline to drop its reference from (and close).
    i32[tw + TL_LOCK] = 0;
    i32[tw + TL_KREF] = 1;
    i32[tw + TL_FILE_REFS] = 1;
    i32[tw + TL_CONTEXT] = context;
    i32[tw + TL_VALUE] = 0;
    i32[tw + TL_HEAD] = 0;
    i32[tw + TL_TAIL] = 0;
    i32[tw + TL_CLOSED] = 0;
    i32[tw + TL_OWNER] = arena.slot + 1;
    i32[tw + TL_OWNER_SERIAL] = i32[arena.slotBase + A.T_SERIAL];
    i32[tw + TL_NAME + L.NM_LEN] = 0;
    writeName(arena, tw + TL_NAME, name ?? `thread-${threadId}`);
    return new SwTimeline(arena, tw - BLOCK_HEADER_WORDS);
  }

  /**
   * A view of the timeline behind `handle`. It takes no reference: it is valid while someone
   * holds one. Its close() drops one the calling thread holds, or — holding none — closes the
   * timeline for everyone (see {@link close}); a reference for another thread goes through
   * {@link share} and {@link receive}. Throws EBADF (stale, freed, forged) or EINVAL (another
   * block type).
   */
  static fromHandle(arena: Arena, handle: number): SwTimeline {
    arenaArg(arena, 'SwTimeline.fromHandle');
    return new SwTimeline(arena, arena.resolve(handle, A.BlockType.TIMELINE, 'timeline'));
  }

  /** Validates the view; returns the payload word index. Throws EBADF once closed or freed. */
  private v(): number {
    if (this.closedHere) throw Errors.badHandle('timeline', this.handle, 'this view was closed');
    const tw = this.arena.resolve(this.handle, A.BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
    if (Atomics.load(this.arena.i32, tw + TL_CLOSED)) throw Errors.badHandle('timeline', this.handle, 'the timeline was closed');
    return tw;
  }

  /** The counter (u32). Throws EBADF once closed. */
  get value(): number {
    return Atomics.load(this.arena.i32, this.v() + TL_VALUE) >>> 0;
  }

  /** The fence context of every point of this timeline. */
  get context(): number {
    return this.arena.i32[this.v() + TL_CONTEXT];
  }

  /** The timeline's name (the timeline name of its unsignaled points). */
  get name(): string {
    return readName(this.arena, this.v() + TL_NAME);
  }

  /** Points waiting on the list (unsignaled and not yet released). Takes the timeline lock. */
  get pending(): number {
    const tw = this.v();
    const i32 = this.arena.i32;
    lockTimeline(this.arena, tw);
    try {
      let n = 0;
      for (let p = i32[tw + TL_HEAD]; p !== 0; p = i32[p + PT_NEXT]) point(this.arena, p, maxBlocks(this.arena) - n++);
      return n;
    } finally {
      unlockTimeline(this.arena, tw);
    }
  }

  /**
   * Takes another open reference for the calling thread, recorded in its ledger in the run that
   * takes it, and returns a new view to {@link close} it with (this thread's reaper drops it if
   * it dies first). Not for another thread: that one's reference goes through {@link share}.
   * Throws EBADF once closed, ENOMEM.
   */
  get(): SwTimeline {
    const tw = this.v();
    getOpenRef(this.arena, tw, this.handle);
    return new SwTimeline(this.arena, tw - BLOCK_HEADER_WORDS);
  }

  /**
   * Hands a new open reference to one other thread: it waits in a transit record of the calling
   * thread (whose reaper drops it if this thread dies first) until {@link receive} claims it.
   * Returns the token, a safe integer wider than 32 bits (post it in a message or a
   * Float64Array/BigInt64Array word). The caller keeps its own reference. Threads: the sender.
   * Throws EBADF (closed), ENOMEM.
   */
  share(): number {
    return shareTimeline(this.arena, this.v(), this.handle);
  }

  /**
   * Takes back a reference this thread shared with {@link share} that nobody has received: it
   * becomes an open reference of the calling thread again (in its ledger from the compare-exchange
   * that takes it back), held by the returned view — {@link close} it like one from {@link get}.
   * Works on a closed view or timeline too (the reference exists until dropped). Threads: the
   * sender. Throws EINVAL (not a timeline token, or another timeline's), EPERM (another thread's
   * share), EBADF (received already, withdrawn, or dropped with its dead sender: nothing changes).
   */
  withdraw(token: number): SwTimeline {
    const tw = this.arena.resolve(this.handle, A.BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
    withdrawTimeline(this.arena, tw, token);
    return new SwTimeline(this.arena, tw - BLOCK_HEADER_WORDS);
  }

  /**
   * Claims the open reference behind a token from {@link share}, recorded in the calling thread's
   * ledger in the claim's run, and returns a view to {@link close} it with (this thread's reaper
   * drops it if it dies first). Exactly one receive of a token succeeds. Threads: any attached
   * thread. Throws EINVAL (not a timeline token: a fence's included), EBADF (stale: received, or
   * dropped with its dead sender; nothing changes), ENOMEM.
   */
  static receive(arena: Arena, token: number): SwTimeline {
    arenaArg(arena, 'SwTimeline.receive');
    return new SwTimeline(arena, receiveTimeline(arena, token) - BLOCK_HEADER_WORDS);
  }

  /**
   * Creates a point at `value` and returns a sync-file fd for it (kernel SW_SYNC_IOC_CREATE_FENCE).
   * An unsignaled point with the same value is reused; a value the counter already reached gives
   * an fd that is signaled at once. `name` names the sync file (the kernel ignores it).
   * Locking: takes the timeline lock. Threads: any attached thread; the fd belongs to it and the
   * caller closes it with SyncFile.close.
   * Kill-safe: the point's reference held here is recorded in the slot from the run that takes it
   * (pointAtLocked) to the run that drops it, the fd is its own record (fdtable.ts): the reaper of a
   * thread terminated anywhere inside puts or frees the one and closes the other.
   * Throws EINVAL (value not a u32, name not a string), EBADF (closed timeline), EMFILE, ENOMEM.
   */
  createFence(value: number, name?: string): number {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw Errors.invalid(`sw_sync point value must be an integer in 0..2^32-1, got ${describeValue(value)}`);
    checkName(name, 'sync_file');
    const arena = this.arena;
    const i32 = arena.i32;
    const tw = this.v();
    let fw = 0;
    lockTimeline(arena, tw);
    try {
      if (i32[tw + TL_CLOSED]) throw Errors.badHandle('timeline', this.handle, 'the timeline was closed');
      fw = pointAtLocked(arena, tw, value);
    } finally {
      unlockTimeline(arena, tw);
    }
    try {
      return syncFileInstall(arena, fw, name);
    } finally {
      putCreatedPoint(arena, fw);
    }
  }

  /**
   * Advances the counter by `n` and signals, in order, every point it reached (kernel
   * SW_SYNC_IOC_INC; steps above 2^31-1 are split like the kernel splits them).
   * Locking: takes the timeline lock, then once per point signaled; each point's callbacks run
   * after it is dropped (those of the calling thread here, others in their owners' threads).
   * Kill-safe: a thread terminated anywhere inside leaves the rest to its reaper (signaling.ts).
   * Throws EINVAL (n not a u32), EBADF (closed).
   */
  inc(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
      throw Errors.invalid(`sw_sync increment must be an integer in 0..2^32-1, got ${describeValue(n)}`);
    const tw = this.v();
    while (n > 0x7fffffff) {
      this.step(tw, 0x7fffffff);
      n -= 0x7fffffff;
    }
    this.step(tw, n);
  }

  /**
   * One kernel-sized step: the counter advanced under the lock, then the points it reached
   * signaled one at a time (signalDue), all under a timeline record pushed first, so that the
   * reaper of a thread terminated anywhere in between signals the rest.
   */
  private step(tw: number, inc: number): void {
    const arena = this.arena;
    const i32 = arena.i32;
    const d = pushTimelineRecord(arena, tw, 0);
    try {
      lockTimeline(arena, tw);
      try {
        if (i32[tw + TL_CLOSED]) throw Errors.badHandle('timeline', this.handle, 'the timeline was closed');
        Atomics.store(i32, tw + TL_VALUE, (i32[tw + TL_VALUE] + inc) | 0);
      } finally {
        unlockTimeline(arena, tw);
      }
      signalDue(arena, tw, timelineRecord(arena, d));
    } finally {
      popTimelineRecord(arena, d);
    }
  }

  /**
   * The deadline set on the point behind sync-file `fd` (kernel SW_SYNC_IOC_GET_DEADLINE): the
   * earliest `setDeadline` asked of it (through the fence, an array or chain holding it, or
   * SyncFile.setDeadline), in monotonic ns.
   * Locking: takes the timeline lock. Threads: any attached thread.
   * Returns the deadline. Throws ENOENT (no deadline was set), EINVAL (the fd's fence is not a point
   * of this timeline), EBADF (fd not open, timeline closed).
   */
  getDeadline(fd: number): bigint {
    const arena = this.arena;
    const i32 = arena.i32;
    const tw = this.v();
    const fw = syncFileFence(arena, fd);
    if (i32[fw + FL.F_OPS] !== swSyncOps.id || i32[fw + PT_TIMELINE] !== tw) {
      putFence(arena, fw);
      throw Errors.invalid(`sync_file fd ${fd} does not hold a point of this sw_sync timeline`);
    }
    let has: boolean;
    let ns = 0n;
    lockTimeline(arena, tw);
    try {
      has = (i32[fw + F_FLAGS] & PT_HAS_DEADLINE) !== 0;
      if (has) ns = arena.i64[(fw + PT_DEADLINE) >>> 1];
    } finally {
      unlockTimeline(arena, tw);
      putFence(arena, fw);
    }
    if (!has) throw Errors.noEntry(`no deadline was set on the sw_sync point of fd ${fd}`);
    return ns;
  }

  /**
   * Closes this view (using it afterwards — createFence, inc, value, a second close — throws EBADF).
   * What else it does depends on the calling thread:
   *
   * - It holds an open reference ({@link create}, {@link get}, {@link receive}; any view of the
   *   timeline in that thread closes one): drops it. The last one (kernel sw_sync release) closes
   *   the timeline — every point still waiting signaled with -ENOENT — and the block is freed once
   *   its last point is released.
   * - It holds none (a {@link fromHandle} view of a timeline another thread created or received):
   *   closes the timeline as a timeline, as its owner's death does — every waiting point signaled
   *   with -ENOENT, and createFence, inc, value, get and share through any view throw EBADF from
   *   then on — and drops nobody's reference: the block is freed once the last holder closes (or
   *   dies) and the last point is released. On a timeline closed already, it only closes this view.
   *
   * Locking: takes the timeline lock (EDEADLK, nothing changed, when the caller holds it through a
   * point's fence). Threads: any attached thread.
   * Kill-safe: a timeline record is pushed first. A holder's drop forgets the ledger entry and,
   * when last, sets SWS_LAST on the record in its run: a thread terminated before the drop leaves
   * its reaper the entry to drop; after it, the last close (if it was) to finish. A thread holding
   * none takes an open reference of its own (a ledger entry, in the run that takes it), closes the
   * timeline under the record, then drops that reference as a holder does: its reaper finishes the
   * signaling and drops the reference, so the close happened or not (one terminated before
   * TL_CLOSED is set) and nothing leaks. Throws EBADF (this view closed; the block freed), EDEADLK,
   * ENOMEM (no memory for the record, nested past SW_CAP, or for the ledger entry of a thread
   * holding none: nothing changed).
   */
  close(): void {
    const arena = this.arena;
    const i32 = arena.i32;
    if (this.closedHere) throw Errors.badHandle('timeline', this.handle, 'this view was closed');
    // Not v(): a timeline closed by its owner's death still has this view's reference to drop.
    const tw = arena.resolve(this.handle, A.BlockType.TIMELINE, 'timeline') + BLOCK_HEADER_WORDS;
    // The last close takes the timeline lock, which every point's fence borrows: refused before
    // the reference is dropped, or a close that failed on the lock would leave the timeline
    // neither open nor closable (and its block allocated for good).
    if ((Atomics.load(i32, tw + TL_LOCK) & LOCK_OWNER_MASK) === arena.me)
      throw Errors.deadlock('close of a timeline while holding its lock (a point fence\'s lock): unlock first (nothing changed)');
    const e = findOpenRef(arena, tw);
    // None held, and closed already (TL_CLOSED) or its last reference gone (the last close is
    // running or done): only this view closes.
    if (e < 0 && (Atomics.load(i32, tw + TL_CLOSED) || Atomics.load(i32, tw + TL_FILE_REFS) <= 0)) {
      this.closedHere = true;
      return;
    }
    // The record first (ENOMEM past SW_CAP: nothing changed): the reaper of a thread terminated
    // from here on finishes what it names.
    const d = pushTimelineRecord(arena, tw, 0);
    try {
      if (e >= 0) {
        this.closedHere = true;
        dropOwnRef(arena, tw, e, d);
      } else if (!tryGetOpenRef(arena, tw)) this.closedHere = true; // its last reference went meanwhile
      else {
        this.closedHere = true;
        closeHoldingNone(arena, tw, d);
      }
    } finally {
      popTimelineRecord(arena, d);
    }
  }

  /**
   * Makes the calling thread the one responsible for this timeline: when it dies, the timeline is
   * closed as by {@link close} of its last reference (every waiting point signaled with -ENOENT;
   * the other holders' views then throw EBADF, and their close() only drops their reference).
   * A timeline's creator is responsible until another thread adopts it or it closes its view.
   * Threads: any attached thread (responsibility is not a reference: its death closes the timeline,
   * its ledger drops the references it holds). Throws EBADF once closed.
   */
  adoptSignaling(): void {
    const i32 = this.arena.i32;
    const tw = this.v();
    i32[tw + TL_OWNER_SERIAL] = i32[this.arena.slotBase + A.T_SERIAL];
    Atomics.store(i32, tw + TL_OWNER, this.arena.slot + 1);
  }
}
