/**
 * The exporter side of the seed (DESIGN.md §6): a driver whose operations live in the arena, each
 * with its own lock word (OP_LOCK) and payload. submit → out-fence (borrowing the operation's lock,
 * or with the inline lock: the driver's lock mode) → export (sync-file fd or fence handle) →
 * execute (simulated work) → signal → free the operation.
 *
 * Exactly once: every way an operation can end — complete, CANCEL, DELETE, or the reaper of a dead
 * exporter — first wins one compare-exchange on OP_STATE, whose value carries the block's
 * generation (`gen << OPS_GEN_SHIFT | state`). A late finisher's CAS fails even if the block was
 * freed and reused meanwhile (the new occupant has another generation), so the out-fence is
 * signaled once and the memory freed once, however the cancel races the completion.
 *
 * Command channel (the ioctl): a shared-memory ring in the driver block (a bounded MPMC queue,
 * Vyukov style: a sequence word per entry), so any thread — any worker, with no MessagePort — can
 * post CANCEL or DELETE for any operation handle. Exporters consume it while they execute
 * ({@link Driver.processCommands} is called between work slices and while sleeping); the same
 * commands can also be run synchronously in the caller ({@link Driver.cancel} / {@link Driver.delete},
 * like an ioctl executed in the caller's context). CANCEL ends an operation that has not started
 * executing; DELETE ends it in any state. Both signal the out-fence with -ECANCELED and free it.
 */
import { onReap, type Arena } from '../arena/arena.js';
import * as L from '../arena/layout.js';
import { Errno, Errors } from '../errors.js';
import { isSignaledFlag, pushRelease } from '../fence/core.js';
import { Fence, createFence, releaseFenceAt } from '../fence/fence.js';
import { defineFenceOps } from '../fence/ops.js';
import { SpinLock } from '../locks/spinlock.js';
import { defineLedgerKind, ledgerRemove, ledgerReserve, LedgerKind } from '../runtime/ledger.js';
import { SyncFile } from '../sync/syncfile.js';

const {
  OP_LOCK, OP_STATE, OP_FENCE, OP_DRIVER, OP_OWNER, OP_ID, OP_DURATION_US, OP_RESULT, OP_PAYLOAD, OP_PAYLOAD_WORDS,
  OP_WORDS, OPS_GEN_SHIFT, OPS_SUBMITTED, OPS_RUNNING, OPS_FINISHING, DRV_CONTEXT, DRV_SEQNO, DRV_OWNER, DRV_NEXT_ID,
  DRV_SUBMITTED, DRV_COMPLETED, DRV_CANCELED, DRV_DELETED, DRV_ABORTED, DRV_CMD_MISSED,
  DRV_RING_HEAD, DRV_RING_TAIL, DRV_RING_CAP, DRV_RING_BELL, DRV_LOCK_MODE, DRV_RING, RING_STRIDE, RE_SEQ, RE_CMD,
  RE_OP_LO, RE_OP_HI, BLOCK_HEADER_WORDS,
} = L;

export type LockMode = 'borrowed' | 'inline';

/** ioctl commands. */
export const DriverCmd = { CANCEL: 1, DELETE: 2 } as const;
export type DriverCommand = (typeof DriverCmd)[keyof typeof DriverCmd];

export interface DriverCounters {
  submitted: number;
  completed: number;
  canceled: number;
  deleted: number;
  /** Ended by the reaper because their exporter died (-ENODEV). */
  aborted: number;
  /** Operations ended (completed + canceled + deleted + aborted); each block is freed right after its end. */
  freed: number;
  /** Commands that found their operation already ended (or running, for CANCEL). */
  missed: number;
  /** Operations submitted and not yet ended. */
  live: number;
}

export interface DriverOptions {
  /** Out-fences borrow the operation's lock (`'borrowed'`, the seed's bug) or use their own (`'inline'`, default). */
  lockMode?: LockMode;
  /** Command ring entries (power of two, default 256). */
  ringSize?: number;
}

export interface SubmitOptions {
  /** Simulated work in µs (default 0). */
  durationUs?: number;
  /** Up to OP_PAYLOAD_WORDS int32 words stored in the operation. */
  payload?: ArrayLike<number>;
}

export const driverOps = defineFenceOps('fencelab:driver', {
  getDriverName: () => 'fencelab-driver',
  getTimelineName: () => 'operations',
});

/** Operations longer than this sleep (on the driver bell) instead of spinning. */
const SPIN_LIMIT_US = 200;

/** A view of one operation (valid until it ends; check {@link Operation.live}). */
export class Operation {
  readonly driver: Driver;
  /** Handle of the operation block (post it to other threads, pass it to cancel/delete). */
  readonly handle: number;
  /** Payload word index and generation of the block. */
  readonly ow: number;
  readonly gen: number;
  /** Per-driver number. */
  readonly id: number;
  /** The out-fence: a view on the operation's reference, valid while the operation lives. */
  readonly fence: Fence;
  readonly durationUs: number;

  /** @internal */
  constructor(driver: Driver, ow: number, gen: number, fence: Fence) {
    this.driver = driver;
    this.ow = ow;
    this.gen = gen;
    this.handle = driver.arena.handleOf(ow - BLOCK_HEADER_WORDS);
    this.id = driver.arena.i32[ow + OP_ID];
    this.durationUs = driver.arena.i32[ow + OP_DURATION_US];
    this.fence = fence;
  }

  /** True until the operation ended and was freed. */
  get live(): boolean {
    return stateOf(this.driver.arena, this.ow, this.gen) !== 0;
  }

  /** 'submitted' | 'running' | 'finishing' | 'ended'. */
  get state(): string {
    return ['ended', 'submitted', 'running', 'finishing', 'new', 'finishing'][stateOf(this.driver.arena, this.ow, this.gen)];
  }

  /** Payload word `i` (0 ≤ i < OP_PAYLOAD_WORDS). Throws EBADF once the operation ended. */
  payload(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= OP_PAYLOAD_WORDS) throw Errors.invalid(`payload index ${i} not in 0..${OP_PAYLOAD_WORDS - 1}`);
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
function stateOf(arena: Arena, ow: number, gen: number): number {
  if (!arena.isLive(ow - BLOCK_HEADER_WORDS, gen)) return 0;
  const s = Atomics.load(arena.i32, ow + OP_STATE);
  return s >>> OPS_GEN_SHIFT === gen ? s & ((1 << OPS_GEN_SHIFT) - 1) : 0;
}

/**
 * Ends operation (ow, gen) exactly once: wins the CAS from one of `from` states to FINISHING,
 * signals the out-fence with `status` (1 = success, else a negative errno set first), bumps
 * `counter`, drops the operation's fence reference and frees the block. Returns whether this call
 * ended it. Threads: any attached thread. Locks: takes the out-fence's lock (the operation's own
 * word when borrowed — still live here, since only the winner frees it).
 * Recovery: the claim is recorded in the caller's thread slot (T_FINISHING) in the same run as
 * the CAS, so a thread terminated anywhere before the free leaves its reaper able to finish the
 * end (see finishDeadOps).
 */
function finishOp(arena: Arena, ow: number, gen: number, status: number, counter: number, allowRunning: boolean): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const hw = ow - BLOCK_HEADER_WORDS;
  const finishing = (gen << OPS_GEN_SHIFT) | OPS_FINISHING;
  for (;;) {
    if (!arena.isLive(hw, gen)) return false;
    const s = Atomics.load(i32, ow + OP_STATE);
    if (s >>> OPS_GEN_SHIFT !== gen) return false;
    const st = s & ((1 << OPS_GEN_SHIFT) - 1);
    if (st !== OPS_SUBMITTED && !(st === OPS_RUNNING && allowRunning)) return false;
    if (Atomics.compareExchange(i32, ow + OP_STATE, s, finishing) === s) {
      i32[ow + OP_RESULT] = status;
      i32[sb + L.T_FINISHING_STATE] = finishing;
      i32[sb + L.T_FINISHING_COUNTER] = counter;
      i32[sb + L.T_FINISHING] = ow;
      break;
    }
  }
  // From here on this thread alone owns the operation.
  // The submitter's ledger names it; only the submitter may edit its ledger (others leave a stale
  // entry that the submitter's execute or compaction drops).
  if (i32[ow + OP_OWNER] === arena.slot) ledgerRemove(arena, LedgerKind.OPERATION, ow, gen);
  completeOp(arena, ow, counter, sb);
  return true;
}

/**
 * The end of a claimed operation, from wherever its finisher got to: signal the out-fence with
 * OP_RESULT (unless it is signaled); count it (the counter add, then state COUNTED, in one run);
 * drop its fence reference (the drop, then state 0, in one run: see pushRelease); free the block;
 * clear the finisher's record at `recordBase` (a thread slot). Each step happens exactly once
 * whoever finishes. Threads: the finisher, or the reaper of a dead one.
 */
function completeOp(arena: Arena, ow: number, counter: number, recordBase: number): void {
  const i32 = arena.i32;
  const fw = i32[ow + OP_FENCE];
  const dw = i32[ow + OP_DRIVER];
  const gen = arena.generationAt(ow - BLOCK_HEADER_WORDS);
  const finishing = (gen << OPS_GEN_SHIFT) | OPS_FINISHING;
  const counted = (gen << OPS_GEN_SHIFT) | L.OPS_COUNTED;
  try {
    if (Atomics.load(i32, ow + OP_STATE) === finishing && !isSignaledFlag(i32, fw)) {
      const fence = new Fence(arena, fw);
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
      const last = Atomics.sub(i32, fw + L.F_REFCOUNT, 1) === 1;
      i32[ow + OP_STATE] = 0;
      if (!last) i32[arena.slotBase + L.T_RELEASE_DEPTH] = d;
      else {
        if (d < L.RELEASE_CAP) i32[arena.slotBase + L.T_RELEASE + 2 * d + 1] |= L.REL_DROPPED;
        releaseFenceAt(arena, fw, d);
      }
    }
    arena.freeBlock(ow - BLOCK_HEADER_WORDS);
    i32[recordBase + L.T_FINISHING] = 0;
    // Wake exporters sleeping in execute(): one of their operations may be the one that ended.
    Atomics.add(i32, dw + DRV_RING_BELL, 1);
    Atomics.notify(i32, dw + DRV_RING_BELL);
  }
}

/**
 * Reap hook: a thread terminated between claiming an operation and freeing it leaves the claim in
 * its slot; finish it here. The record is ours to act on only while the block is still that
 * allocation (generation) in that thread's FINISHING state, or in state 0 (ended, not yet freed).
 */
function finishDeadOps(arena: Arena, slot: number): void {
  if (slot === arena.slot) return; // detach: never inside finishOp
  const i32 = arena.i32;
  const b = arena.slotWord(slot);
  const ow = i32[b + L.T_FINISHING];
  if (ow === 0) return;
  const finishing = i32[b + L.T_FINISHING_STATE];
  if (!arena.isLive(ow - BLOCK_HEADER_WORDS, finishing >>> OPS_GEN_SHIFT)) return;
  const s = Atomics.load(i32, ow + OP_STATE);
  const counted = (finishing & ~((1 << OPS_GEN_SHIFT) - 1)) | L.OPS_COUNTED;
  if (s === finishing || s === counted || s === 0) completeOp(arena, ow, i32[b + L.T_FINISHING_COUNTER], b);
  else if (arena.sanitize && s === L.POISON) {
    // Ended, and terminated inside its sanitized free: the payload is poisoned, the block not yet
    // free. Only the free is left.
    arena.freeBlock(ow - BLOCK_HEADER_WORDS);
    i32[b + L.T_FINISHING] = 0;
  }
}
onReap(finishDeadOps);

// A dead creator's driver: destroyed once its operations ended (the ledger is reaped newest first,
// so the creator's own operations end before this runs); one still used by operations another
// thread submitted stays (arena.check() reports it).
defineLedgerKind(LedgerKind.DRIVER, (arena, dw, gen, slot) => {
  const hw = dw - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen)) return;
  finishDeadOps(arena, slot); // an operation the creator was ending counts as live until then
  if (arena.i32[dw + DRV_RING_CAP] === 0) {
    arena.freeBlock(hw); // it died inside create
    return;
  }
  const d = Driver.fromHandle(arena, arena.handleOf(hw));
  if (d.counters.live === 0) d.destroy();
});

/** A driver: its timeline (fence context), counters and command ring live in one arena block. */
export class Driver {
  readonly arena: Arena;
  /** Payload word index of the driver block. */
  readonly dw: number;
  readonly handle: number;
  private readonly gen: number;
  private readonly ringMask: number;

  private constructor(arena: Arena, dw: number) {
    this.arena = arena;
    this.dw = dw;
    this.handle = arena.handleOf(dw - BLOCK_HEADER_WORDS);
    this.gen = arena.generationAt(dw - BLOCK_HEADER_WORDS);
    this.ringMask = arena.i32[dw + DRV_RING_CAP] - 1;
  }

  /**
   * Creates a driver (one fence context) in the arena. Any thread may then submit to it
   * (`Driver.fromHandle`). Throws EINVAL (options), ENOMEM. The creator frees it with {@link destroy}.
   */
  static create(arena: Arena, options: DriverOptions = {}): Driver {
    const mode = options.lockMode ?? 'inline';
    if (mode !== 'inline' && mode !== 'borrowed') throw Errors.invalid(`lockMode must be 'inline' or 'borrowed', got ${String(mode)}`);
    const cap = options.ringSize ?? 256;
    if (!Number.isInteger(cap) || cap < 2 || cap > 1 << 16 || (cap & (cap - 1)) !== 0)
      throw Errors.invalid(`ringSize must be a power of two in 2..65536, got ${String(cap)}`);
    const context = arena.contextAlloc(1);
    // Recorded in our ledger in the run that allocates it (room reserved first): if this thread
    // dies, its reaper destroys the driver after ending its operations (see the DRIVER kind).
    const lw = ledgerReserve(arena);
    const hw = arena.allocBlock((DRV_RING + cap * RING_STRIDE) * 4 + BLOCK_HEADER_WORDS * 4, L.BlockType.DRIVER);
    const dw = hw + BLOCK_HEADER_WORDS;
    const i32 = arena.i32;
    i32[dw + DRV_RING_CAP] = 0; // not initialised yet
    const n = i32[lw + L.LG_COUNT];
    const e = lw + L.LG_ENTRIES + n * L.LG_STRIDE;
    i32[e + L.LE_KIND] = LedgerKind.DRIVER;
    i32[e + L.LE_VALUE] = dw;
    i32[e + L.LE_GEN] = i32[hw + L.B_GEN] & L.GEN_MASK;
    i32[lw + L.LG_COUNT] = n + 1;
    i32.fill(0, dw, dw + DRV_RING + cap * RING_STRIDE);
    i32[dw + DRV_CONTEXT] = context;
    i32[dw + DRV_OWNER] = arena.slot;
    i32[dw + DRV_LOCK_MODE] = mode === 'borrowed' ? 1 : 0;
    for (let k = 0; k < cap; k++) i32[dw + DRV_RING + k * RING_STRIDE + RE_SEQ] = k;
    i32[dw + DRV_RING_CAP] = cap; // last: initialised
    return new Driver(arena, dw);
  }

  /** The driver behind `handle`, in any thread. Throws EBADF / EINVAL. */
  static fromHandle(arena: Arena, handle: number): Driver {
    const dw = arena.resolve(handle, L.BlockType.DRIVER, 'driver') + BLOCK_HEADER_WORDS;
    const cap = arena.i32[dw + DRV_RING_CAP];
    if (cap < 2 || (cap & (cap - 1)) !== 0 || arena.payloadBytes(dw - BLOCK_HEADER_WORDS) < (DRV_RING + cap * RING_STRIDE) * 4)
      throw Errors.invalid(`handle ${handle} is not a driver`);
    return new Driver(arena, dw);
  }

  private check(): number {
    if (!this.arena.isLive(this.dw - BLOCK_HEADER_WORDS, this.gen)) throw Errors.badHandle('driver', this.handle, 'the driver was destroyed');
    return this.dw;
  }

  get lockMode(): LockMode {
    return this.arena.i32[this.check() + DRV_LOCK_MODE] ? 'borrowed' : 'inline';
  }

  /** The fence context of the driver's timeline. */
  get context(): number {
    return this.arena.i32[this.check() + DRV_CONTEXT];
  }

  /** A snapshot of the counters (Atomics loads; consistent once the driver is idle). */
  get counters(): DriverCounters {
    const i32 = this.arena.i32;
    const dw = this.check();
    const c = {
      submitted: Atomics.load(i32, dw + DRV_SUBMITTED),
      completed: Atomics.load(i32, dw + DRV_COMPLETED),
      canceled: Atomics.load(i32, dw + DRV_CANCELED),
      deleted: Atomics.load(i32, dw + DRV_DELETED),
      aborted: Atomics.load(i32, dw + DRV_ABORTED),
      freed: 0,
      missed: Atomics.load(i32, dw + DRV_CMD_MISSED),
      live: 0,
    };
    // Derived, not kept: one counter add per end is what a terminated finisher cannot split.
    c.freed = c.completed + c.canceled + c.deleted + c.aborted;
    c.live = c.submitted - c.freed;
    return c;
  }

  /**
   * Submits an operation: allocates it, creates its out-fence (next seqno on the driver's
   * context; borrowing the operation's lock word in 'borrowed' mode), records it in the calling
   * thread's ledger (if this thread dies, the reaper ends it with -ENODEV). The operation holds
   * the out-fence's only reference until it ends; export before sharing its handle.
   * Threads: the exporter (any attached thread). Throws EINVAL (options), ENOMEM (nothing left allocated).
   */
  submit(options: SubmitOptions = {}): Operation {
    const arena = this.arena;
    const i32 = arena.i32;
    const dw = this.check();
    const dur = options.durationUs ?? 0;
    if (!Number.isInteger(dur) || dur < 0 || dur > 60_000_000) throw Errors.invalid(`durationUs must be an integer in 0..60e6, got ${String(dur)}`);
    const payload = options.payload;
    if (payload !== undefined && (typeof payload.length !== 'number' || payload.length > OP_PAYLOAD_WORDS))
      throw Errors.invalid(`payload holds at most ${OP_PAYLOAD_WORDS} words`);
    // Room in our ledger first, so that the operation is recorded with plain writes in the same
    // run as its allocation: a terminate() anywhere after leaves the reaper an operation to end
    // (published) or to free with its out-fence (not yet published; see the OPERATION kind below).
    const lw = ledgerReserve(arena);
    const hw = arena.allocBlock(OP_WORDS * 4 + BLOCK_HEADER_WORDS * 4, L.BlockType.OPERATION);
    const ow = hw + BLOCK_HEADER_WORDS;
    const gen = i32[hw + L.B_GEN] & L.GEN_MASK;
    i32[ow + OP_LOCK] = 0; // held the free-list link
    i32[ow + OP_STATE] = (gen << OPS_GEN_SHIFT) | L.OPS_NEW;
    i32[ow + OP_FENCE] = 0;
    const n = i32[lw + L.LG_COUNT];
    const e = lw + L.LG_ENTRIES + n * L.LG_STRIDE;
    i32[e + L.LE_KIND] = LedgerKind.OPERATION;
    i32[e + L.LE_VALUE] = ow;
    i32[e + L.LE_GEN] = gen;
    i32[lw + L.LG_COUNT] = n + 1;
    i32.fill(0, ow + OP_FENCE + 1, ow + OP_WORDS);
    const ref = arena.handleOf(hw);
    let fence: Fence;
    try {
      const seqno = (Atomics.add(i32, dw + DRV_SEQNO, 1) + 1) >>> 0;
      const lock = i32[dw + DRV_LOCK_MODE] ? SpinLock.at(arena, ref, OP_LOCK * 4) : undefined;
      // The fence lands in OP_FENCE as it is allocated: the reaper of an unpublished operation frees both.
      fence = createFence(arena, { ops: driverOps, context: i32[dw + DRV_CONTEXT], seqno, lock }, ow + OP_FENCE);
    } catch (e) {
      arena.freeBlock(hw); // first: a stale ledger entry is skipped, a lost block would leak
      ledgerRemove(arena, LedgerKind.OPERATION, ow, gen);
      throw e;
    }
    i32[ow + OP_DRIVER] = dw;
    i32[ow + OP_OWNER] = arena.slot;
    i32[ow + OP_ID] = Atomics.add(i32, dw + DRV_NEXT_ID, 1) + 1;
    i32[ow + OP_DURATION_US] = dur;
    if (payload) for (let k = 0; k < payload.length; k++) i32[ow + OP_PAYLOAD + k] = payload[k] | 0;
    // Publish last, counted in the same run (the add is a full barrier: the fields above are
    // visible before the state): from here on cancel/delete/reap can end the operation.
    Atomics.add(i32, dw + DRV_SUBMITTED, 1);
    i32[ow + OP_STATE] = (gen << OPS_GEN_SHIFT) | OPS_SUBMITTED;
    return new Operation(this, ow, gen, fence);
  }

  /**
   * Executes an operation: simulated work of its duration (spinning when short, else sleeping on
   * the driver bell), consuming the command ring meanwhile, then completes it (signal, free).
   * Returns the out-fence's final status: 1 when this call completed it, -ECANCELED when a command
   * ended it first. Threads: the submitter (it owns the ledger entry).
   */
  execute(op: Operation): number {
    const arena = this.arena;
    const i32 = arena.i32;
    const dw = this.check();
    const { ow, gen } = op;
    const started = arena.isLive(ow - BLOCK_HEADER_WORDS, gen) &&
      Atomics.compareExchange(i32, ow + OP_STATE, (gen << OPS_GEN_SHIFT) | OPS_SUBMITTED, (gen << OPS_GEN_SHIFT) | OPS_RUNNING) ===
        ((gen << OPS_GEN_SHIFT) | OPS_SUBMITTED);
    if (started) {
      const end = performance.now() + op.durationUs / 1000;
      const bell = dw + DRV_RING_BELL;
      for (;;) {
        this.processCommands();
        if (stateOf(arena, ow, gen) !== OPS_RUNNING) break;
        const left = end - performance.now();
        if (left <= 0) break;
        if (op.durationUs > SPIN_LIMIT_US) {
          Atomics.wait(i32, bell, Atomics.load(i32, bell), left);
        } else {
          for (let k = 0; k < 256; k++) Atomics.load(i32, ow + OP_STATE);
        }
      }
    }
    const done = finishOp(arena, ow, gen, 1, DRV_COMPLETED, true);
    ledgerRemove(arena, LedgerKind.OPERATION, ow, gen);
    return done ? 1 : Errno.ECANCELED;
  }

  /**
   * Ends an operation now, in the calling thread (the ioctl run in the caller's context). CANCEL
   * ends it only before it started executing; DELETE in any state. The out-fence gets -ECANCELED,
   * the operation is freed. Returns true when this call ended it, false when it had already ended
   * (or, for CANCEL, is executing). Threads: any attached thread. Throws EINVAL for a bad command.
   */
  command(cmd: DriverCommand, opHandle: number): boolean {
    const dw = this.check();
    if (cmd !== DriverCmd.CANCEL && cmd !== DriverCmd.DELETE) throw Errors.invalid(`unknown driver command ${String(cmd)}`);
    if (typeof opHandle !== 'number' || !Number.isSafeInteger(opHandle) || opHandle <= 0)
      throw Errors.badHandle('operation', opHandle, 'not a handle');
    const ow = (opHandle & L.HANDLE_OFFSET_MASK) * 2 + BLOCK_HEADER_WORDS;
    const gen = Math.floor(opHandle / L.HANDLE_OFFSET_SCALE);
    return this.run(dw, cmd, ow, gen);
  }

  private run(dw: number, cmd: number, ow: number, gen: number): boolean {
    const arena = this.arena;
    let done = false;
    // Stale handles are expected here (the operation ended): isLive first, so nothing is touched.
    if (this.isOperationOf(ow, gen, dw))
      done = finishOp(arena, ow, gen, Errno.ECANCELED, cmd === DriverCmd.CANCEL ? DRV_CANCELED : DRV_DELETED, cmd === DriverCmd.DELETE);
    if (!done) Atomics.add(arena.i32, dw + DRV_CMD_MISSED, 1);
    return done;
  }

  private isOperationOf(ow: number, gen: number, dw: number): boolean {
    const arena = this.arena;
    const hw = ow - BLOCK_HEADER_WORDS;
    let handle: number;
    try {
      handle = gen * L.HANDLE_OFFSET_SCALE + (hw >>> 1);
      arena.resolve(handle, L.BlockType.OPERATION, 'operation');
    } catch {
      return false;
    }
    return arena.i32[ow + OP_DRIVER] === dw;
  }

  /** {@link command} with CANCEL. */
  cancel(opHandle: number): boolean {
    return this.command(DriverCmd.CANCEL, opHandle);
  }

  /** {@link command} with DELETE. */
  delete(opHandle: number): boolean {
    return this.command(DriverCmd.DELETE, opHandle);
  }

  /**
   * Posts a command to the ring for an exporter to run (see {@link processCommands}). Threads: any
   * attached thread; never blocks. Returns false when the ring is full (nothing posted).
   * Throws EINVAL (command), EBADF (not a handle).
   */
  ioctl(cmd: DriverCommand, opHandle: number): boolean {
    const i32 = this.arena.i32;
    const dw = this.check();
    if (cmd !== DriverCmd.CANCEL && cmd !== DriverCmd.DELETE) throw Errors.invalid(`unknown driver command ${String(cmd)}`);
    if (typeof opHandle !== 'number' || !Number.isSafeInteger(opHandle) || opHandle <= 0)
      throw Errors.badHandle('operation', opHandle, 'not a handle');
    let pos = Atomics.load(i32, dw + DRV_RING_TAIL);
    for (;;) {
      const e = dw + DRV_RING + (pos & this.ringMask) * RING_STRIDE;
      const dif = (Atomics.load(i32, e + RE_SEQ) - pos) | 0;
      if (dif === 0) {
        if (Atomics.compareExchange(i32, dw + DRV_RING_TAIL, pos, (pos + 1) | 0) === pos) {
          i32[e + RE_CMD] = cmd;
          i32[e + RE_OP_LO] = opHandle & L.HANDLE_OFFSET_MASK;
          i32[e + RE_OP_HI] = Math.floor(opHandle / L.HANDLE_OFFSET_SCALE);
          // The sequence store publishes the entry: the consumer reads the fields only after it.
          Atomics.store(i32, e + RE_SEQ, (pos + 1) | 0);
          Atomics.add(i32, dw + DRV_RING_BELL, 1);
          Atomics.notify(i32, dw + DRV_RING_BELL);
          return true;
        }
        pos = Atomics.load(i32, dw + DRV_RING_TAIL);
      } else if (dif < 0) {
        return false;
      } else {
        pos = Atomics.load(i32, dw + DRV_RING_TAIL);
      }
    }
  }

  /**
   * Runs every command posted to the ring so far. Threads: exporters (any number may consume).
   * Returns how many commands ran.
   */
  processCommands(): number {
    const i32 = this.arena.i32;
    const dw = this.check();
    let n = 0;
    let pos = Atomics.load(i32, dw + DRV_RING_HEAD);
    for (;;) {
      const e = dw + DRV_RING + (pos & this.ringMask) * RING_STRIDE;
      const dif = (Atomics.load(i32, e + RE_SEQ) - ((pos + 1) | 0)) | 0;
      if (dif === 0) {
        if (Atomics.compareExchange(i32, dw + DRV_RING_HEAD, pos, (pos + 1) | 0) === pos) {
          const cmd = i32[e + RE_CMD];
          const lo = i32[e + RE_OP_LO];
          const gen = i32[e + RE_OP_HI];
          Atomics.store(i32, e + RE_SEQ, (pos + this.ringMask + 1) | 0);
          this.run(dw, cmd, lo * 2 + BLOCK_HEADER_WORDS, gen);
          n++;
        }
        pos = Atomics.load(i32, dw + DRV_RING_HEAD);
      } else if (dif < 0) {
        return n;
      } else {
        pos = Atomics.load(i32, dw + DRV_RING_HEAD);
      }
    }
  }

  /**
   * Blocks until a command is posted or an operation ends, or `timeoutMs` passes; returns the bell
   * value seen. Threads: workers (exporter idle loops). Throws EINVAL for a bad timeout.
   */
  waitBell(seen: number, timeoutMs: number): void {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw Errors.invalid(`timeout must be a number ≥ 0, got ${String(timeoutMs)}`);
    Atomics.wait(this.arena.i32, this.check() + DRV_RING_BELL, seen, timeoutMs);
  }

  /** Current bell value (pass to {@link waitBell}). */
  get bell(): number {
    return Atomics.load(this.arena.i32, this.check() + DRV_RING_BELL);
  }

  /**
   * Frees the driver block. Commands still queued name operations that have all ended: they are
   * consumed first (counted as missed). Threads: any (normally its creator), once no other thread
   * uses the driver. Throws EBUSY while operations are live (nothing freed).
   */
  destroy(): void {
    const i32 = this.arena.i32;
    const dw = this.check();
    const live = this.counters.live;
    if (live !== 0) throw Errors.busy(`driver has ${live} live operations`);
    this.processCommands();
    // Freed first: a stale ledger entry (in the creator's ledger, if another thread destroys) is skipped.
    this.arena.freeBlock(dw - BLOCK_HEADER_WORDS);
    ledgerRemove(this.arena, LedgerKind.DRIVER, dw, this.gen);
  }
}

// A dead exporter's operations: like a GPU reset, their out-fences get -ENODEV and they are freed.
defineLedgerKind(LedgerKind.OPERATION, (arena, ow, gen) => {
  const i32 = arena.i32;
  const hw = ow - BLOCK_HEADER_WORDS;
  if (!arena.isLive(hw, gen)) return; // ended and freed
  if (Atomics.load(i32, ow + OP_STATE) !== ((gen << OPS_GEN_SHIFT) | L.OPS_NEW)) {
    finishOp(arena, ow, gen, Errno.ENODEV, DRV_ABORTED, true); // published: end it (unless ending already)
    return;
  }
  // Never published (its submitter died inside submit): nobody else knows the operation or its
  // fence, which may be half initialised; free both blocks as they are.
  const fw = i32[ow + OP_FENCE];
  const fhw = fw - BLOCK_HEADER_WORDS;
  // Any generation: a fence nobody else ever saw was not freed or reused by anybody.
  if (fw !== 0 && arena.isLive(fhw, arena.generationAt(fhw))) arena.freeBlock(fhw);
  arena.freeBlock(hw);
});
