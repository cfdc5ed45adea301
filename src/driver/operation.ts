/**
 * A driver operation: the exporter's object in the arena, with its own lock word (OP_LOCK, which
 * the out-fence borrows in 'borrowed' lock mode) and payload, and the out-fence it signals when
 * it ends.
 *
 * Exactly once: every way an operation can end — complete, CANCEL, DELETE, or the reaper of a dead
 * exporter — first wins one compare-exchange on OP_STATE, whose value carries the block's
 * generation (`gen << OPS_GEN_SHIFT | state`). A late finisher's CAS fails even if the block was
 * freed and reused meanwhile (the new occupant has another generation), so the out-fence is
 * signaled once and the memory freed once, however a cancel races the completion.
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { describeValue, Errno, Errors } from '../errors.js';
import { isSignaledFlag } from '../fence/core.js';
import { createFenceAt } from '../fence/create.js';
import { dropRef, pushRelease } from '../fence/drop.js';
import { type Fence, fenceView } from '../fence/fence.js';
import { ledgerAllocBlock, ledgerRemove } from '../fence/ledger.js';
import { defineFenceOps } from '../fence/ops.js';
import { releaseFenceAt } from '../fence/release.js';
import { SpinLock } from '../locks/spinlock.js';
import { SyncFile } from '../sync/syncfile.js';
import * as TR from '../trace/layout.js';
import { traceEvent, tracing } from '../trace/ring.js';
import type { Driver } from './driver.js';
import { ringBell } from './ring.js';

const { EV_OP_CANCELLED, EV_OP_ENDED, EV_OP_SUBMITTED, OP_END_ABORTED, OP_END_CANCELED, OP_END_COMPLETED, OP_END_DELETED, TC_DRIVER } = TR;

const { OP_LOCK, OP_STATE, OP_FENCE, OP_DRIVER, OP_OWNER, OP_ID, OP_DURATION_US, OP_RESULT, OP_PAYLOAD, OP_PAYLOAD_WORDS, OP_WORDS, OPS_GEN_SHIFT, OPS_SUBMITTED, OPS_RUNNING, OPS_FINISHING, DRV_CONTEXT, DRV_SEQNO, DRV_NEXT_ID, DRV_SUBMITTED, DRV_LOCK_MODE } = L;
const { BLOCK_HEADER_WORDS } = A;
const STATE_MASK = (1 << OPS_GEN_SHIFT) - 1;

export const driverOps = defineFenceOps('fencelab:driver', {
  getDriverName: () => 'fencelab-driver',
  getTimelineName: () => 'operations',
});

/** What {@link Operation.state} reports for each OPS_* state (0: ended and freed). */
function stateName(state: number): string {
  switch (state) {
    case OPS_SUBMITTED:
      return 'submitted';
    case OPS_RUNNING:
      return 'running';
    case OPS_FINISHING:
    case L.OPS_COUNTED:
      return 'finishing';
    case L.OPS_NEW:
      return 'new';
    default:
      return 'ended';
  }
}

/** A view of one operation (valid until it ends; check {@link Operation.live}). */
export class Operation {
  /** The driver that submitted it. */
  readonly driver: Driver;
  /** Handle of the operation block (post it to other threads, pass it to cancel/delete). */
  readonly handle: number;
  /** @internal Payload word index of the block. */
  readonly ow: number;
  /** @internal Generation of the block. */
  readonly gen: number;
  /** Per-driver number. */
  readonly id: number;
  /** The out-fence: a view on the operation's reference, valid while the operation lives. */
  readonly fence: Fence;
  /** The simulated work's duration (µs) it was submitted with. */
  readonly durationUs: number;

  /** Not public (one built by hand would skip its factory's checks): operations come from {@link Driver.submit}. */
  private constructor(driver: Driver, ow: number, gen: number, fence: Fence) {
    this.driver = driver;
    this.ow = ow;
    this.gen = gen;
    this.handle = driver.arena.handleOf(ow - BLOCK_HEADER_WORDS);
    this.id = driver.arena.i32[ow + OP_ID];
    this.durationUs = driver.arena.i32[ow + OP_DURATION_US];
    this.fence = fence;
  }

  /** @internal The view of operation `ow` (generation `gen`) with out-fence view `fence`, for Driver.submit. */
  static make(driver: Driver, ow: number, gen: number, fence: Fence): Operation {
    return new Operation(driver, ow, gen, fence);
  }

  /** True until the operation ended and was freed. */
  get live(): boolean {
    return stateOf(this.driver.arena, this.ow, this.gen) !== 0;
  }

  /** 'submitted' | 'running' | 'finishing' | 'ended'. */
  get state(): string {
    return stateName(stateOf(this.driver.arena, this.ow, this.gen));
  }

  /** Payload word `i` (0 ≤ i < OP_PAYLOAD_WORDS). Throws EBADF once the operation ended. */
  payload(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= OP_PAYLOAD_WORDS) throw Errors.invalid(`payload index ${describeValue(i)} not in 0..${OP_PAYLOAD_WORDS - 1}`);
    if (!this.live) throw Errors.badHandle('operation', this.handle, 'the operation ended');
    return this.driver.arena.i32[this.ow + OP_PAYLOAD + i];
  }

  /**
   * Exports the out-fence as a plain fence handle with a new reference for the receiver (who
   * puts it). Threads: the submitter, before the operation's handle is shared (afterwards another
   * thread may end the operation and its reference with it). Throws EBADF once it ended.
   */
  exportHandle(): number {
    if (!this.live) throw Errors.badHandle('operation', this.handle, 'the operation ended');
    return this.fence.get().handle;
  }

  /**
   * Exports the out-fence as a sync-file fd (its own reference; the fd belongs to the calling
   * thread and is closed if that thread is reaped). Whoever receives it closes it. Same threading
   * rule as {@link exportHandle}. Throws EBADF once it ended, EMFILE, ENOMEM.
   */
  exportFd(name?: string): number {
    if (!this.live) throw Errors.badHandle('operation', this.handle, 'the operation ended');
    return SyncFile.create(this.driver.arena, this.fence, name);
  }
}

/** Current state of operation (ow, gen): OPS_* or 0 when the block is not that operation any more. */
export function stateOf(arena: Arena, ow: number, gen: number): number {
  if (!arena.isLive(ow - BLOCK_HEADER_WORDS, gen)) return 0;
  const s = Atomics.load(arena.i32, ow + OP_STATE);
  return s >>> OPS_GEN_SHIFT === gen ? s & STATE_MASK : 0;
}

/**
 * Allocates an operation of driver block `dw` with its out-fence (next seqno on the driver's
 * context), recorded in the calling thread's ledger, and publishes it (SUBMITTED). Returns the
 * payload word index of the operation. Threads: the exporter. Throws ENOMEM (nothing left allocated).
 */
export function submitOperation(arena: Arena, dw: number, durationUs: number, payload: ArrayLike<number> | undefined): number {
  const i32 = arena.i32;
  // Recorded in our ledger in the run of its allocation (see ledgerAllocBlock), and these first
  // plain writes with it: a terminate() anywhere after leaves the reaper an operation to end
  // (published) or to free with its out-fence (still NEW; see the OPERATION kind in recovery.ts).
  const ow = ledgerAllocBlock(arena, L.LGK_OPERATION, OP_WORDS * 4 + BLOCK_HEADER_WORDS * 4, A.BlockType.OPERATION);
  const hw = ow - BLOCK_HEADER_WORDS;
  const gen = i32[hw + A.B_GEN] & A.GEN_MASK;
  i32[ow + OP_LOCK] = 0; // held the free-list link
  i32[ow + OP_STATE] = (gen << OPS_GEN_SHIFT) | L.OPS_NEW;
  i32[ow + OP_FENCE] = 0;
  i32.fill(0, ow + OP_FENCE + 1, ow + OP_WORDS);
  try {
    const seqno = (Atomics.add(i32, dw + DRV_SEQNO, 1) + 1) >>> 0;
    const lock = i32[dw + DRV_LOCK_MODE] ? SpinLock.at(arena, arena.handleOf(hw), OP_LOCK * 4) : undefined;
    // The fence lands in OP_FENCE as it is allocated: the reaper of an unpublished operation frees both.
    createFenceAt(arena, { ops: driverOps, context: i32[dw + DRV_CONTEXT], seqno, lock }, ow + OP_FENCE);
  } catch (e) {
    arena.freeBlock(hw); // first: a stale ledger entry is skipped, a lost block would leak
    ledgerRemove(arena, L.LGK_OPERATION, ow, gen);
    throw e;
  }
  i32[ow + OP_DRIVER] = dw;
  i32[ow + OP_OWNER] = arena.slot;
  i32[ow + OP_ID] = Atomics.add(i32, dw + DRV_NEXT_ID, 1) + 1;
  i32[ow + OP_DURATION_US] = durationUs;
  if (payload) for (let k = 0; k < payload.length; k++) i32[ow + OP_PAYLOAD + k] = payload[k] | 0;
  // Publish last, counted in the same run (the add is a full barrier: the fields above are
  // visible before the state): from here on cancel/delete/reap can end the operation.
  Atomics.add(i32, dw + DRV_SUBMITTED, 1);
  i32[ow + OP_STATE] = (gen << OPS_GEN_SHIFT) | OPS_SUBMITTED;
  if (tracing(i32, TC_DRIVER)) {
    const fw = i32[ow + OP_FENCE];
    traceEvent(arena, EV_OP_SUBMITTED, ow, gen, fw, i32[fw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK, i32[ow + OP_ID]);
  }
  return ow;
}

/** How an operation ended (OP_END_*), from the driver counter its end bumps. */
function endOf(counter: number): number {
  switch (counter) {
    case L.DRV_COMPLETED:
      return OP_END_COMPLETED;
    case L.DRV_CANCELED:
      return OP_END_CANCELED;
    case L.DRV_DELETED:
      return OP_END_DELETED;
    default:
      return OP_END_ABORTED;
  }
}

/**
 * Ends operation (ow, gen) exactly once: wins the CAS from SUBMITTED (or RUNNING when
 * `allowRunning`) to FINISHING, signals the out-fence with `status` (1 = success, else a negative
 * errno set first), bumps `counter`, drops the operation's fence reference and frees the block.
 * Returns whether this call ended it. Threads: any attached thread. Locks: takes the out-fence's
 * lock (the operation's own word when borrowed — still live here, since only the winner frees it).
 * Recovery: the claim is recorded in the caller's thread slot (a T_FINISH record, one per nested
 * end) in the same run as the CAS, so a thread terminated anywhere before the free leaves its
 * reaper able to finish the end, and every end it was nested in (see finishDeadOps in recovery.ts).
 * Throws EDEADLK, changing nothing, when the thread is inside FINISH_CAP ends already.
 */
export function finishOp(arena: Arena, ow: number, gen: number, status: number, counter: number, allowRunning: boolean): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const hw = ow - BLOCK_HEADER_WORDS;
  const finishing = (gen << OPS_GEN_SHIFT) | OPS_FINISHING;
  const depth = i32[sb + L.T_FINISH_DEPTH];
  if (depth >= L.FINISH_CAP) throw Errors.deadlock(`operation ends nested deeper than ${L.FINISH_CAP} (an end's callbacks ending another operation)`);
  const rec = sb + L.T_FINISH + depth * L.FINISH_STRIDE;
  for (;;) {
    if (!arena.isLive(hw, gen)) return false;
    const s = Atomics.load(i32, ow + OP_STATE);
    if (s >>> OPS_GEN_SHIFT !== gen) return false;
    const st = s & STATE_MASK;
    if (st !== OPS_SUBMITTED && !(st === OPS_RUNNING && allowRunning)) return false;
    if (Atomics.compareExchange(i32, ow + OP_STATE, s, finishing) === s) {
      // The record and its push in the run of the CAS: a reaper always knows the claim.
      i32[ow + OP_RESULT] = status;
      i32[rec + L.FIN_STATE] = finishing;
      i32[rec + L.FIN_COUNTER] = counter;
      i32[rec + L.FIN_OP] = ow;
      i32[sb + L.T_FINISH_DEPTH] = depth + 1;
      break;
    }
  }
  // From here on this thread alone owns the operation.
  if (counter !== L.DRV_COMPLETED && tracing(i32, TC_DRIVER)) traceEvent(arena, EV_OP_CANCELLED, ow, gen, endOf(counter), status, 0);
  // The submitter's ledger names it; only the submitter may edit its ledger (others leave a stale
  // entry that the submitter's execute or compaction drops).
  try {
    if (i32[ow + OP_OWNER] === arena.slot) ledgerRemove(arena, L.LGK_OPERATION, ow, gen);
    completeOp(arena, ow, counter, rec);
  } finally {
    i32[sb + L.T_FINISH_DEPTH] = depth;
  }
  return true;
}

/**
 * The end of a claimed operation, from wherever its finisher got to: signal the out-fence with
 * OP_RESULT (unless it is signaled); count it (the counter add, then state COUNTED, in one run);
 * drop its fence reference (state 0 in the drop's run: see dropRef); free the block; clear the
 * finisher's end record at `recordBase` (in a thread slot's T_FINISH). Each step happens exactly once whoever
 * finishes. Threads: the finisher, or the reaper of a dead one.
 */
export function completeOp(arena: Arena, ow: number, counter: number, recordBase: number): void {
  const i32 = arena.i32;
  const fw = i32[ow + OP_FENCE];
  const dw = i32[ow + OP_DRIVER];
  const gen = arena.generationAt(ow - BLOCK_HEADER_WORDS);
  const finishing = (gen << OPS_GEN_SHIFT) | OPS_FINISHING;
  const counted = (gen << OPS_GEN_SHIFT) | L.OPS_COUNTED;
  try {
    if (Atomics.load(i32, ow + OP_STATE) === finishing && !isSignaledFlag(i32, fw)) {
      const fence = fenceView(arena, fw);
      const status = i32[ow + OP_RESULT];
      if (status < 0) fence.setError(status);
      fence.signal();
    }
  } finally {
    if (Atomics.load(i32, ow + OP_STATE) === finishing) {
      Atomics.add(i32, dw + counter, 1);
      i32[ow + OP_STATE] = counted;
    }
    if (Atomics.load(i32, ow + OP_STATE) === counted) {
      const d = pushRelease(arena, fw);
      if (dropRef(arena, fw, d, ow + OP_STATE, 0) === 1) releaseFenceAt(arena, fw, d);
    }
    // A call here is no new interruption point: a terminate() at it is one at the freeBlock call.
    if (tracing(i32, TC_DRIVER)) traceEvent(arena, EV_OP_ENDED, ow, gen, endOf(counter), i32[ow + OP_RESULT], 0);
    arena.freeBlock(ow - BLOCK_HEADER_WORDS);
    i32[recordBase + L.FIN_OP] = 0;
    // Wake exporters sleeping in execute(): one of their operations may be the one that ended.
    ringBell(i32, dw);
  }
}

/**
 * Runs command `cmd` (CANCEL: only before it started executing; DELETE: in any state) on the
 * operation at (ow, gen) if it is one of driver block `dw`'s: the out-fence gets -ECANCELED and
 * the operation is freed. A stale or foreign handle is expected (the operation ended) and touches
 * nothing. Returns whether this call ended it; a miss is counted.
 */
export function runCommand(arena: Arena, dw: number, cmd: number, ow: number, gen: number): boolean {
  let done = false;
  if (isOperationOf(arena, ow, gen, dw))
    done = finishOp(arena, ow, gen, Errno.ECANCELED, cmd === L.CMD_CANCEL ? L.DRV_CANCELED : L.DRV_DELETED, cmd === L.CMD_DELETE);
  if (!done) Atomics.add(arena.i32, dw + L.DRV_CMD_MISSED, 1);
  return done;
}

/** Is (ow, gen) a live operation of driver block `dw`? isLive first, so a stale handle touches nothing. */
function isOperationOf(arena: Arena, ow: number, gen: number, dw: number): boolean {
  try {
    arena.resolve(gen * A.HANDLE_OFFSET_SCALE + ((ow - BLOCK_HEADER_WORDS) >>> 1), A.BlockType.OPERATION, 'operation');
  } catch {
    return false;
  }
  return arena.i32[ow + OP_DRIVER] === dw;
}
