/**
 * The exporter side: a driver whose operations live in the arena (src/driver/operation.ts).
 * submit → out-fence (borrowing the operation's lock, or with the inline lock: the driver's lock
 * mode) → export (sync-file fd or fence handle) → execute (simulated work) → signal → free the
 * operation.
 *
 * Commands (the ioctl): CANCEL ends an operation that has not started executing, DELETE ends it in
 * any state; both signal the out-fence with -ECANCELED and free it. Any thread can post them to
 * the driver's command ring (src/driver/ring.ts) for an exporter to run — exporters consume it
 * while they execute ({@link Driver.processCommands} runs between work slices and while sleeping)
 * — or run them synchronously ({@link Driver.cancel} / {@link Driver.delete}, like an ioctl
 * executed in the caller's context).
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { BlockView } from '../arena/blockview.js';
import { handleGen } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { describeValue, Errno, Errors, optionsArg, isInstance, isLiveObject } from '../errors.js';
import { contextAlloc, traceFence } from '../fence/core.js';
import { fenceView } from '../fence/fence.js';
import { ledgerAllocBlock, ledgerRemove } from '../fence/ledger.js';
import { defineLedgerKind } from '../fence/ledgerreap.js';
import { checkTimeout } from '../timeout.js';
import { finishOp, Operation, runCommand, stateOf, submitOperation } from './operation.js';
import { finishDeadOps } from './recovery.js';
import { ringInit, ringPost, ringTake } from './ring.js';
import * as TR from '../trace/layout.js';
import { tracing } from '../trace/ring.js';

const { EV_FENCE_EMIT, TC_FENCE } = TR;

export { Operation } from './operation.js';

const {
  OP_STATE, OP_FENCE, OP_PAYLOAD_WORDS, OPS_GEN_SHIFT, OPS_SUBMITTED, OPS_RUNNING, DRV_CONTEXT, DRV_OWNER, DRV_SUBMITTED, DRV_COMPLETED,
  DRV_CANCELED, DRV_DELETED, DRV_ABORTED, DRV_CMD_MISSED, DRV_RING_CAP, DRV_RING_BELL, DRV_LOCK_MODE, DRV_RING, RING_STRIDE,
} = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * How a driver's out-fences lock: `'inline'`, each its own lock word; `'borrowed'`, the operation's
 * lock word (the kernel RFC's bug: the word dangles once the operation is freed).
 */
export type LockMode = 'borrowed' | 'inline';

/** ioctl commands ({@link Driver.command}, {@link Driver.ioctl}). */
export const DriverCmd = {
  /** End an operation that has not started executing. */
  CANCEL: L.CMD_CANCEL,
  /** End an operation in any state. */
  DELETE: L.CMD_DELETE,
} as const;
/** One of the {@link DriverCmd} values. */
export type DriverCommand = (typeof DriverCmd)[keyof typeof DriverCmd];

/** {@link Driver.counters}: operations by how they ended, counted across every thread. */
export interface DriverCounters {
  /** Operations submitted. */
  submitted: number;
  /** Ended by {@link Driver.execute} (out-fence status 1). */
  completed: number;
  /** Ended by a CANCEL command (-ECANCELED). */
  canceled: number;
  /** Ended by a DELETE command (-ECANCELED). */
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

/** {@link Driver.create}'s options. */
export interface DriverOptions {
  /** Out-fences borrow the operation's lock (`'borrowed'`: the use-after-free once the operation is freed) or use their own (`'inline'`, default). */
  lockMode?: LockMode;
  /** Command ring entries (power of two, default 256). */
  ringSize?: number;
}

/** {@link Driver.submit}'s options. */
export interface SubmitOptions {
  /** Simulated work in µs (default 0). */
  durationUs?: number;
  /** Up to OP_PAYLOAD_WORDS int32 words stored in the operation. */
  payload?: ArrayLike<number>;
}

/** The operations {@link Driver.execute} ran: executing one again is EBADF, not a made-up -ECANCELED. */
const executed = new WeakSet<Operation>();

/**
 * Checks {@link Driver.execute}'s argument: an Operation that `driver` submitted (a forged object,
 * one of another driver → EINVAL) and that no execute ran yet (→ EBADF). Threads: the submitter.
 */
function operationArg(driver: Driver, op: unknown): asserts op is Operation {
  if (!isInstance(op, Operation) || !isInstance(op.driver, Driver) || op.driver.handle !== driver.handle ||
      op.driver.arena !== driver.arena || !Number.isInteger(op.ow) || !Number.isInteger(op.gen))
    throw Errors.invalid(`execute: op must be an Operation of this driver, got ${describeValue(op)}`);
  if (executed.has(op)) throw Errors.badHandle('operation', op.handle, 'it was executed already');
}

/** Operations longer than this sleep (on the driver bell) instead of spinning. */
const SPIN_LIMIT_US = 200;

/** What ringTake hands processCommands: [command, operation handle low part, generation]. */
const taken = new Int32Array(3);

// A dead creator's driver: destroyed once its operations ended (the ledger is reaped newest first,
// so the creator's own operations end before this runs); one still used by operations another
// thread submitted stays (arena.check() reports it).
defineLedgerKind(L.LGK_DRIVER, (arena, dw, gen, slot) => {
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

/** Throws EINVAL for an unknown command, EBADF for an operation handle that is no handle at all. */
function checkCommand(cmd: DriverCommand, opHandle: number): void {
  if (cmd !== DriverCmd.CANCEL && cmd !== DriverCmd.DELETE) throw Errors.invalid(`unknown driver command ${describeValue(cmd)}`);
  if (typeof opHandle !== 'number' || !Number.isSafeInteger(opHandle) || opHandle <= 0)
    throw Errors.badHandle('operation', opHandle, 'not a handle');
}

/** A driver: its timeline (fence context), counters and command ring live in one arena block. */
export class Driver extends BlockView {
  private readonly ringMask: number;

  private constructor(arena: Arena, dw: number) {
    super(arena, dw);
    this.ringMask = arena.i32[dw + DRV_RING_CAP] - 1;
  }

  /**
   * Creates a driver (one fence context) in the arena. Any thread may then submit to it
   * (`Driver.fromHandle`). Throws EINVAL (options), ENOMEM. The creator frees it with {@link destroy}.
   */
  static create(arena: Arena, options?: DriverOptions): Driver {
    arenaArg(arena, 'Driver.create');
    options = optionsArg(options, 'Driver.create', ['lockMode', 'ringSize']);
    const mode = options.lockMode === undefined ? 'inline' : options.lockMode;
    if (mode !== 'inline' && mode !== 'borrowed') throw Errors.invalid(`lockMode must be 'inline' or 'borrowed', got ${describeValue(mode)}`);
    const cap = options.ringSize === undefined ? 256 : options.ringSize;
    if (!Number.isInteger(cap) || cap < 2 || cap > 1 << 16 || (cap & (cap - 1)) !== 0)
      throw Errors.invalid(`ringSize must be a power of two in 2..65536, got ${describeValue(cap)}`);
    const context = contextAlloc(arena, 1);
    // Recorded in our ledger in the run that allocates it, "not initialised" with it (see
    // ledgerAllocBlock): if this thread dies, its reaper frees or destroys it (see the DRIVER kind).
    const dw = ledgerAllocBlock(arena, L.LGK_DRIVER, (DRV_RING + cap * RING_STRIDE) * 4 + BLOCK_HEADER_WORDS * 4, A.BlockType.DRIVER);
    const i32 = arena.i32;
    i32[dw + DRV_RING_CAP] = 0; // not initialised yet
    i32.fill(0, dw, dw + DRV_RING + cap * RING_STRIDE);
    i32[dw + DRV_CONTEXT] = context;
    i32[dw + DRV_OWNER] = arena.slot;
    i32[dw + DRV_LOCK_MODE] = mode === 'borrowed' ? 1 : 0;
    ringInit(i32, dw, cap);
    i32[dw + DRV_RING_CAP] = cap; // last: initialised
    return new Driver(arena, dw);
  }

  /** The driver behind `handle`, in any thread. Throws EBADF / EINVAL. */
  static fromHandle(arena: Arena, handle: number): Driver {
    arenaArg(arena, 'Driver.fromHandle');
    const dw = arena.resolve(handle, A.BlockType.DRIVER, 'driver') + BLOCK_HEADER_WORDS;
    const cap = arena.i32[dw + DRV_RING_CAP];
    if (cap < 2 || (cap & (cap - 1)) !== 0 || arena.payloadBytes(dw - BLOCK_HEADER_WORDS) < (DRV_RING + cap * RING_STRIDE) * 4)
      throw Errors.invalid(`handle ${handle} is not a driver`);
    return new Driver(arena, dw);
  }

  private check(): number {
    return this.live('driver', 'the driver was destroyed');
  }

  /** How the driver's out-fences lock (set at create). Throws EBADF once the driver was destroyed. */
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
  submit(options?: SubmitOptions): Operation {
    options = optionsArg(options, 'submit', ['durationUs', 'payload']);
    const arena = this.arena;
    const i32 = arena.i32;
    const dw = this.check();
    const dur = options.durationUs === undefined ? 0 : options.durationUs;
    if (!Number.isInteger(dur) || dur < 0 || dur > 60_000_000) throw Errors.invalid(`durationUs must be an integer in 0..60e6, got ${describeValue(dur)}`);
    const ow = submitOperation(arena, dw, dur, payloadWords(options.payload));
    const gen = arena.generationAt(ow - BLOCK_HEADER_WORDS);
    return Operation.make(this, ow, gen, fenceView(arena, i32[ow + OP_FENCE]));
  }

  /**
   * Executes an operation: simulated work of its duration (spinning when short, else sleeping on
   * the driver bell), consuming the command ring meanwhile, then completes it (signal, free).
   * Returns the out-fence's final status: 1 when this call completed it, -ECANCELED when a command
   * ended it first. Threads: the submitter (it owns the ledger entry). Throws EINVAL (not an
   * Operation of this driver), EBADF (an operation executed already: nothing runs again).
   */
  execute(op: Operation): number {
    operationArg(this, op);
    const arena = this.arena;
    const i32 = arena.i32;
    const dw = this.check();
    const { ow, gen } = op;
    const started = arena.isLive(ow - BLOCK_HEADER_WORDS, gen) &&
      Atomics.compareExchange(i32, ow + OP_STATE, (gen << OPS_GEN_SHIFT) | OPS_SUBMITTED, (gen << OPS_GEN_SHIFT) | OPS_RUNNING) ===
        ((gen << OPS_GEN_SHIFT) | OPS_SUBMITTED);
    if (started) {
      if (tracing(i32, TC_FENCE)) traceFence(arena, EV_FENCE_EMIT, i32[ow + L.OP_FENCE], 0);
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
    executed.add(op);
    ledgerRemove(arena, L.LGK_OPERATION, ow, gen);
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
    checkCommand(cmd, opHandle);
    const ow = (opHandle & A.HANDLE_OFFSET_MASK) * 2 + BLOCK_HEADER_WORDS;
    const gen = handleGen(opHandle);
    return runCommand(this.arena, dw, cmd, ow, gen);
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
    checkCommand(cmd, opHandle);
    return ringPost(i32, dw, this.ringMask, cmd, opHandle);
  }

  /**
   * Runs every command posted to the ring so far. Threads: exporters (any number may consume).
   * Returns how many commands ran.
   */
  processCommands(): number {
    const i32 = this.arena.i32;
    const dw = this.check();
    let n = 0;
    while (ringTake(i32, dw, this.ringMask, taken)) {
      // Read out before running: a callback of the command's signal may process commands too.
      const cmd = taken[0];
      const ow = taken[1] * 2 + BLOCK_HEADER_WORDS;
      runCommand(this.arena, dw, cmd, ow, taken[2]);
      n++;
    }
    return n;
  }

  /**
   * Blocks until the bell moves from `seen` (a command was posted or an operation ended), or
   * `timeoutMs` passes. Threads: workers (exporter idle loops). Throws EINVAL (seen not an int32, a bad timeout).
   */
  waitBell(seen: number, timeoutMs: number): void {
    if (!Number.isInteger(seen) || seen < -0x80000000 || seen > 0x7fffffff) throw Errors.invalid(`waitBell: seen must be a bell value (an int32), got ${describeValue(seen)}`);
    checkTimeout(timeoutMs, 'waitBell timeoutMs');
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
    const dw = this.check();
    const live = this.counters.live;
    if (live !== 0) throw Errors.busy(`driver has ${live} live operations`);
    this.processCommands();
    // Freed first: a stale ledger entry (in the creator's ledger, if another thread destroys) is skipped.
    this.arena.freeBlock(dw - BLOCK_HEADER_WORDS);
    ledgerRemove(this.arena, L.LGK_DRIVER, dw, this.gen);
  }
}

/**
 * A submit's payload as checked words, its length and each element read exactly once: what is
 * copied into the operation is what was checked (an array-like whose length or elements change
 * between two reads wrote past the operation block, or threw after it was allocated).
 */
function payloadWords(payload: unknown): number[] | undefined {
  if (payload === undefined) return undefined;
  const n: unknown = payload !== null && typeof payload === 'object' && isLiveObject(payload) ? (payload as ArrayLike<unknown>).length : undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > OP_PAYLOAD_WORDS)
    throw Errors.invalid(`payload must be an array of at most ${OP_PAYLOAD_WORDS} int32 words, got ${describeValue(payload)}`);
  const words: number[] = [];
  for (let k = 0; k < n; k++) {
    const w: unknown = (payload as ArrayLike<unknown>)[k];
    if (typeof w !== 'number' || (w | 0) !== w) throw Errors.invalid(`payload[${k}] must be an int32, got ${describeValue(w)}`);
    words.push(w);
  }
  return words;
}
