/**
 * The seed scenario's workers (demo and stress). One file, two roles:
 * - exporter: runs a Driver (src/driver): submits an operation that owns a lock, whose out-fence
 *   borrows that lock or has the inline lock, hands the fence to an importer, executes (or cancels
 *   through the ioctl), which signals and frees the operation — exactly the RFC's driver;
 * - importer: takes fences, waits for them (signal→wake latency), optionally adds/removes a
 *   callback, and — after the operation is gone — takes the fence lock again, as importers do.
 * Every critical section is watched by the board's guard, so broken mutual exclusion is counted,
 * not guessed. All randomness comes from the worker's seeded PRNG.
 */
import { parentPort, workerData } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import { Arena, Driver, Errno, Fence, FenceError, SpinLock, drainInbox } from '../src/index.js';
import {
  C, DONE, EMPTY, EX_DONE, EX_SLOT, EX_STAGE, HANDLES_F64, PUBLISHED, RING, RING_SLOTS, S_CB, S_EXPECT, S_EXPECT_ALT, S_FREED, S_OWNER, S_STATE,
  S_STRIDE, STAGE_CLAIMED, STAGE_COUNTED, STAGE_ENDED, STAGE_IDLE, STAGE_INFLIGHT, STAGE_PUBLISHED, STAGE_SUBMITTING, fillingBy, takenBy,
  boardOf, bump, guardEnter, guardExit, ringChanged, waitRing,
} from '../src/cli/board.js';
import { F_REFCOUNT, REL_DROPPED, RELEASE_CAP, T_DOORBELL, T_RELEASE, T_RELEASE_DEPTH } from '../src/fence/layout.js';
import { OP_LOCK } from '../src/driver/layout.js';
import { pushRelease } from '../src/fence/core.js';
import { releaseFenceAt } from '../src/fence/fence.js';

export interface SeedWorkerData {
  role: 'exporter' | 'importer';
  index: number;
  arena: SharedArrayBuffer;
  board: SharedArrayBuffer;
  guard: SharedArrayBuffer;
  lockMode: 'borrowed' | 'inline';
  /** Operations this exporter runs; 0 = until the board says stop. */
  ops: number;
  workUs: number;
  csUs: number;
  jitter: number;
  cancelRate: number;
  callbackRate: number;
  waitTimeoutMs: number;
  lockTimeoutMs: number;
  /** Published-but-unconsumed fences allowed (small: importers wait before the signal). */
  maxInflight: number;
  seed: string;
}

const cfg = workerData as SeedWorkerData;
const arena = Arena.attach(cfg.arena);
const board = boardOf(cfg.board, cfg.guard);
const rng = seedrandom(`${cfg.seed}:${cfg.role}:${cfg.index}`);
const b32 = board.i32;

function spinMicros(us: number): void {
  if (us <= 0) return;
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

function jittered(us: number): number {
  return us * (1 - cfg.jitter + 2 * cfg.jitter * rng());
}

function stopping(): boolean {
  return Atomics.load(b32, C.STOP) !== 0;
}

function slotWord(i: number, field: number): number {
  return RING + i * S_STRIDE + field;
}

/** A critical section on a lock word, watched by the guard. Counts hangs, lost words, owner deaths. */
function critical(lockFn: (ms: number) => boolean, unlockFn: () => void, idx: number, holdUs: number, ownerDied = () => false): void {
  if (!lockFn(cfg.lockTimeoutMs)) {
    bump(board, C.HANGS);
    return;
  }
  if (ownerDied()) bump(board, C.OWNER_DIED);
  guardEnter(board, idx, cfg.index);
  spinMicros(holdUs);
  guardExit(board, idx, cfg.index);
  try {
    unlockFn();
  } catch (e) {
    if (e instanceof FenceError && e.code === 'EPERM') bump(board, C.LOCK_ERRORS);
    else throw e;
  }
}

function runExporter(): void {
  const drv = Driver.create(arena, { lockMode: cfg.lockMode });
  try {
    produce(drv);
  } finally {
    drv.destroy();
  }
}

function produce(drv: Driver): void {
  let cursor = 0;
  for (let n = 0; cfg.ops === 0 || n < cfg.ops; n++) {
    // Claim an empty ring slot (bounded: the board's stop flag ends the wait). Each step below
    // records itself in EX_STAGE in the run of its Atomics op (see board.ts), for our recovery.
    let slot = -1;
    while (slot < 0) {
      if (stopping()) return;
      const seen = Atomics.load(b32, C.SEQ);
      if (Atomics.load(b32, C.INFLIGHT) >= cfg.maxInflight) {
        waitRing(board, seen, 5);
        continue;
      }
      for (let k = 0; k < RING_SLOTS; k++) {
        const i = (cursor + k) % RING_SLOTS;
        const w = slotWord(i, S_STATE);
        if (Atomics.compareExchange(b32, w, EMPTY, fillingBy(cfg.index)) === EMPTY) {
          b32[EX_SLOT + cfg.index] = i;
          b32[EX_STAGE + cfg.index] = STAGE_CLAIMED;
          slot = i;
        } else if (Atomics.compareExchange(b32, w, DONE, fillingBy(cfg.index)) === DONE) {
          b32[EX_SLOT + cfg.index] = i;
          b32[EX_STAGE + cfg.index] = STAGE_CLAIMED;
          slot = i;
          dropSlotReference(i); // the importer's reference came back with the slot
        } else {
          continue;
        }
        cursor = i + 1;
        break;
      }
      if (slot < 0) waitRing(board, seen, 5);
    }
    b32[slotWord(slot, S_OWNER)] = cfg.index;
    // Submit: the driver allocates the operation (its lock word at OP_LOCK) and creates its
    // out-fence — borrowing that lock, or with the inline lock, per the driver's lock mode.
    b32[EX_STAGE + cfg.index] = STAGE_SUBMITTING;
    const op = drv.submit({ durationUs: Math.round(jittered(cfg.workUs)) });
    const opLock = SpinLock.at(arena, op.handle, OP_LOCK * 4);
    // The driver sets its operation up under the operation's own lock.
    critical((ms) => opLock.lock(ms), () => opLock.unlock(), opLock.index, jittered(cfg.csUs) / 2, () => opLock.ownerDied);
    bump(board, C.FENCES);
    b32[EX_STAGE + cfg.index] = STAGE_COUNTED;
    // A driver that always signals: enabling now means importers never need the lock for it.
    op.fence.enableSignaling();
    const cancel = rng() < cfg.cancelRate;
    Atomics.store(b32, slotWord(slot, S_EXPECT), cancel ? Errno.ECANCELED : 1);
    Atomics.store(b32, slotWord(slot, S_EXPECT_ALT), 0);
    Atomics.store(b32, slotWord(slot, S_FREED), 0);
    // A reference for the importer, written into the slot in the run that takes it.
    const handle = op.fence.handle;
    Atomics.add(arena.i32, op.fence.fw + F_REFCOUNT, 1);
    board.f64[HANDLES_F64 + slot] = handle;
    Atomics.add(b32, C.INFLIGHT, 1);
    b32[EX_STAGE + cfg.index] = STAGE_INFLIGHT;
    Atomics.store(b32, slotWord(slot, S_STATE), PUBLISHED);
    b32[EX_STAGE + cfg.index] = STAGE_PUBLISHED;
    ringChanged(board);
    // Part of the execution under the operation's lock, like a driver updating its state.
    critical((ms) => opLock.lock(ms), () => opLock.unlock(), opLock.index, jittered(cfg.csUs), () => opLock.ownerDied);
    // Cancel (the ioctl, in the caller's context) or execute: either signals the out-fence and
    // then frees the operation — and the lock its fence borrowed with it. That is the seed.
    const ended = cancel ? drv.cancel(op.handle) : drv.execute(op) === 1;
    if (cancel) bump(board, C.CANCELLED);
    bump(board, ended ? C.SIGNALS : C.STATUS_MISMATCH);
    b32[EX_STAGE + cfg.index] = STAGE_ENDED;
    Atomics.store(b32, slotWord(slot, S_FREED), 1);
    ringChanged(board);
    bump(board, C.OPS);
    b32[EX_DONE + cfg.index]++;
    b32[EX_STAGE + cfg.index] = STAGE_IDLE;
  }
}

/**
 * Drops the reference a claimed slot carries and clears its handle in the run of the drop (see
 * board.ts): a killed exporter's recovery puts the handle only if it is still there.
 */
function dropSlotReference(i: number): void {
  const fw = Fence.fromHandle(arena, board.f64[HANDLES_F64 + i]).fw;
  const i32 = arena.i32;
  const d = pushRelease(arena, fw);
  const last = Atomics.sub(i32, fw + F_REFCOUNT, 1) === 1;
  board.f64[HANDLES_F64 + i] = 0;
  if (!last) i32[arena.slotBase + T_RELEASE_DEPTH] = d;
  else {
    if (d < RELEASE_CAP) i32[arena.slotBase + T_RELEASE + 2 * d + 1] |= REL_DROPPED;
    releaseFenceAt(arena, fw, d);
  }
}

function runImporter(): number[] {
  const latencies: number[] = [];
  const doorbell = arena.slotBase + T_DOORBELL;
  let cursor = 0;
  for (;;) {
    let slot = -1;
    const seen = Atomics.load(b32, C.SEQ);
    for (let k = 0; k < RING_SLOTS; k++) {
      const i = (cursor + k) % RING_SLOTS;
      if (Atomics.load(b32, slotWord(i, S_STATE)) !== PUBLISHED) continue;
      if (Atomics.compareExchange(b32, slotWord(i, S_STATE), PUBLISHED, takenBy(arena.me)) === PUBLISHED) {
        slot = i;
        cursor = i + 1;
        break;
      }
    }
    if (slot < 0) {
      if (stopping() || Atomics.load(b32, C.EXPORTERS_LEFT) === 0) return latencies;
      waitRing(board, seen, 5);
      continue;
    }
    const f = Fence.fromHandle(arena, board.f64[HANDLES_F64 + slot]);
    // Optional callback, sometimes removed again: it must run exactly once, or never if removed.
    let ran = 0;
    let expectRun = false;
    if (rng() < cfg.callbackRate) {
      const cb = f.addCallback(() => {
        ran++;
      });
      bump(board, C.CB_ADDED);
      if (cb === null) {
        bump(board, C.CB_LATE); // already signaled: never added, nothing to run
      } else if (rng() < 0.3 && f.removeCallback(cb)) {
        bump(board, C.CB_REMOVED);
      } else {
        expectRun = true;
        Atomics.store(b32, slotWord(slot, S_CB), 1);
      }
    }
    const early = !f.testSignaledFlag();
    if (f.wait(cfg.waitTimeoutMs)) {
      const ts = f.timestamp;
      // Only a wait that began before the signal measures signal→wake, not queueing.
      if (early && ts !== undefined) {
        latencies.push(Number(process.hrtime.bigint() - ts) / 1000);
        bump(board, C.WAKES);
      }
      const expect = Atomics.load(b32, slotWord(slot, S_EXPECT));
      const alt = Atomics.load(b32, slotWord(slot, S_EXPECT_ALT)); // -ENODEV once its exporter died
      const status = f.error || 1;
      if (status !== expect && (alt === 0 || status !== alt)) bump(board, C.STATUS_MISMATCH);
    } else {
      bump(board, C.HANGS);
    }
    if (expectRun) {
      // The exporter pushes our callback to our inbox right after it signals; run it here.
      const deadline = performance.now() + cfg.waitTimeoutMs;
      for (;;) {
        const bell = Atomics.load(arena.i32, doorbell);
        drainInbox(arena);
        if (ran > 0 || performance.now() > deadline) break;
        Atomics.wait(arena.i32, doorbell, bell, 1);
      }
      drainInbox(arena);
      if (ran === 1) bump(board, C.CB_RAN);
      else if (ran > 1) bump(board, C.CB_DOUBLE);
      else bump(board, C.HANGS);
    } else if (ran !== 0) {
      bump(board, C.CB_DOUBLE);
    }
    // Importers keep using the fence after the exporter is done with it: wait for the free...
    const freedBy = performance.now() + cfg.waitTimeoutMs;
    while (Atomics.load(b32, slotWord(slot, S_FREED)) === 0) {
      if (performance.now() > freedBy) break;
      waitRing(board, Atomics.load(b32, C.SEQ), 1);
    }
    // ...then take the fence lock, as any importer may (status queries, dma_fence_lock_irqsave).
    if (!f.usesInlineLock) bump(board, C.STALE);
    critical((ms) => f.lock(ms), () => f.unlock(), f.lockWordIndex, jittered(cfg.csUs));
    Atomics.store(b32, slotWord(slot, S_CB), 0);
    Atomics.sub(b32, C.INFLIGHT, 1);
    // One store hands slot and reference back (see board.ts): the reclaiming exporter puts it.
    Atomics.store(b32, slotWord(slot, S_STATE), DONE);
    ringChanged(board);
    bump(board, C.CONSUMED);
  }
}

let latencies: number[] = [];
try {
  parentPort!.postMessage({ type: 'ready', slot: arena.slot });
  if (cfg.role === 'exporter') runExporter();
  else latencies = runImporter();
} catch (e) {
  bump(board, C.ERRORS);
  parentPort!.postMessage({ type: 'error', message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
} finally {
  if (cfg.role === 'exporter') {
    Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
    ringChanged(board);
  }
}
parentPort!.postMessage({ type: 'done', latencies: Float64Array.from(latencies), uafReports: arena.uafReports.length });
arena.detach();
