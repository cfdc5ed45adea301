/**
 * The importer worker: takes fences from the ring and, for each: imports it (the slot's parked
 * reference, or its sync-file fd as a tracked reference), optionally adds a callback (sometimes
 * removing it again), optionally cancels or deletes the operation (in place, or through the
 * driver's command ring), holds the fence a random time, waits for it (sync or async: the
 * signal→wake latency), and — once the exporter has freed the operation — takes the fence lock
 * again, as importers do (status queries, dma_fence_lock_irqsave): through a borrowed lock, that
 * is the RFC's use-after-free. Then it hands the slot back. Options: EngineOptions.
 */
import {
  Driver, DriverCmd, Errno, Fence, FenceError, SyncFile, drain, importFd, putTracked, waitInbox,
} from '../src/index.js';
import {
  C, EXF_DRIVER, PUBLISHED, RETURNED, RING_SLOTS, SF_CARRIER, SF_OP, S_EXPECT, S_FREED, S_OWNER, S_RETURNING, S_STATE, CARRIER_FD, CARRIER_TOKEN,
  bump, expectBit, ringChanged, settleSlot, slotF64, slotWord, takenBy, waitRing,
} from './board.js';
import { EngineThread, sleepMs } from './engine.js';

const t = new EngineThread();
const { cfg, arena, board } = t;
const b32 = board.i32;
const fdCarrier = Atomics.load(b32, C.CARRIER) === CARRIER_FD;
const tokenCarrier = Atomics.load(b32, C.CARRIER) === CARRIER_TOKEN;
const drivers = new Map<number, Driver | null>();
let cursor = 0;

/** One fence being consumed. */
interface Taken {
  slot: number;
  fence: Fence;
  /** Runs of our callback; whether it must run (added, not removed, not refused). */
  ran: number;
  expectRun: boolean;
}

function take(): number {
  for (let k = 0; k < RING_SLOTS; k++) {
    const i = (cursor + k) % RING_SLOTS;
    const w = slotWord(i, S_STATE);
    if (Atomics.load(b32, w) === PUBLISHED && Atomics.compareExchange(b32, w, PUBLISHED, takenBy(t.index)) === PUBLISHED) {
      cursor = i + 1;
      return i;
    }
  }
  return -1;
}

/**
 * The slot's fence: a view on its parked reference, or a reference of ours (tracked) imported from
 * its fd or received with its token.
 */
function importFence(slot: number): Fence | null {
  const carrier = board.f64[slotF64(slot, SF_CARRIER)];
  if (tokenCarrier) return receive(carrier);
  if (!fdCarrier) return Fence.fromHandle(arena, carrier);
  let fence: Fence;
  try {
    // Taken and recorded in one step: a terminate() here cannot leak the reference.
    fence = importFd(arena, carrier);
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
    bump(board, C.BAD_FD); // its exporter died and its reaper closed the fd
    return null;
  }
  closeQuietly(carrier);
  return fence;
}

/** The reference behind a hand-over token, claimed into our ledger in one run (Fence.receive). */
function receive(token: number): Fence | null {
  try {
    return Fence.receive(arena, token);
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
    bump(board, C.BAD_FD); // its exporter died and its reaper withdrew the reference
    return null;
  }
}

function closeQuietly(fd: number): void {
  try {
    SyncFile.close(arena, fd);
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EBADF')) throw e; // its dead exporter's reaper was first
  }
}

function driverOf(handle: number): Driver | null {
  let d = drivers.get(handle);
  if (d === undefined) {
    try {
      d = Driver.fromHandle(arena, handle);
    } catch (e) {
      if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
      d = null; // destroyed with its dead exporter
    }
    drivers.set(handle, d);
  }
  return d;
}

/** Cancels or deletes the slot's operation: in place (the ioctl in our context) or through the driver's ring. */
function command(slot: number): void {
  const drv = driverOf(board.f64[EXF_DRIVER + b32[slotWord(slot, S_OWNER)]]);
  if (!drv) return;
  const cmd = t.rng() < 0.5 ? DriverCmd.DELETE : DriverCmd.CANCEL;
  const op = board.f64[slotF64(slot, SF_OP)];
  bump(board, C.COMMANDS);
  try {
    if (t.rng() < 0.5 && cfg.commandVia === 'either') {
      if (drv.command(cmd, op)) bump(board, C.COMMANDS_WON);
    } else if (!drv.ioctl(cmd, op)) {
      bump(board, C.RING_FULL);
    }
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EBADF')) throw e; // the driver went with its exporter
  }
}

function begin(slot: number, fence: Fence): Taken {
  const it: Taken = { slot, fence, ran: 0, expectRun: false };
  // Optional callback, sometimes removed again: it must run exactly once, or never if removed.
  if (t.rng() < cfg.callbackRate) {
    const cb = fence.addCallback(() => {
      it.ran++;
    });
    bump(board, C.CB_ADDED);
    if (cb === null) bump(board, C.CB_LATE); // already signaled: never added, nothing to run
    else if (t.rng() < cfg.removeRate && fence.removeCallback(cb)) bump(board, C.CB_REMOVED);
    else it.expectRun = true;
  }
  if (cfg.commandRate > 0 && t.rng() < cfg.commandRate) command(slot);
  return it;
}

/** Holds the fence a while, then waits for its signal; returns whether it came in time. */
function waitFor(it: Taken): boolean | Promise<boolean> {
  const hold = cfg.holdMaxMs > 0 ? t.rng() * cfg.holdMaxMs : 0;
  const sync = cfg.waitMode === 'sync' || (cfg.waitMode === 'mixed' && t.rng() < 0.5);
  const f = it.fence;
  if (sync) {
    sleepMs(hold);
    const early = !f.testSignaledFlag();
    return waited(f, early, f.wait(cfg.waitTimeoutMs));
  }
  return new Promise<void>((r) => setTimeout(r, hold)).then(() => {
    const early = !f.testSignaledFlag();
    return f.waitAsync(cfg.waitTimeoutMs).then((ok) => waited(f, early, ok));
  });
}

/** Counts a wait: a timeout is a hang; only one that began before the signal measures signal→wake. */
function waited(f: Fence, early: boolean, ok: boolean): boolean {
  const ts = f.timestamp;
  if (!ok) bump(board, C.HANGS);
  else if (early && ts !== undefined) {
    t.latencies.push(Number(process.hrtime.bigint() - ts) / 1000);
    bump(board, C.WAKES);
  }
  return ok;
}

/** Our callback, if it must run: the signaler pushed it to our inbox; run it here. */
function checkCallback(it: Taken): void {
  if (!it.expectRun) {
    if (it.ran !== 0) bump(board, C.CB_DOUBLE);
    return;
  }
  const deadline = performance.now() + cfg.waitTimeoutMs;
  for (let left = cfg.waitTimeoutMs; it.ran === 0 && left > 0; left = deadline - performance.now()) waitInbox(arena, Math.min(left, 50));
  drain(arena);
  bump(board, it.ran === 1 ? C.CB_RAN : it.ran > 1 ? C.CB_DOUBLE : C.HANGS);
}

/** Waits (bounded) until the exporter has freed the operation; false on timeout (a hang). */
function awaitFreed(slot: number): boolean {
  const by = performance.now() + cfg.waitTimeoutMs;
  while (Atomics.load(b32, slotWord(slot, S_FREED)) === 0) {
    if (performance.now() > by) {
      bump(board, C.HANGS);
      return false;
    }
    waitRing(board, Atomics.load(b32, C.SEQ), 1);
  }
  return true;
}

/** The status against what the exporter allowed (read once it is done with the operation). */
function checkStatus(it: Taken, freed: boolean): void {
  const status = it.fence.error || 1; // not status(): it takes the fence lock
  if (status === Errno.ECANCELED) bump(board, C.SEEN_CANCELED);
  else if (status === Errno.ENODEV) bump(board, C.SEEN_NODEV);
  if (freed && (Atomics.load(b32, slotWord(it.slot, S_EXPECT)) & expectBit(status)) === 0) bump(board, C.STATUS_MISMATCH);
}

function finish(it: Taken, signaled: boolean): void {
  const f = it.fence;
  checkCallback(it);
  // Importers keep using the fence after the exporter is done with it: wait for the free...
  const freed = awaitFreed(it.slot);
  if (signaled) checkStatus(it, freed);
  // ...then take the fence lock, as any importer may.
  if (!f.usesInlineLock) bump(board, C.STALE);
  t.critical((ms) => f.lock(ms), () => f.unlock(), f.lockWordIndex, t.jittered(cfg.csUs));
  if (fdCarrier || tokenCarrier) putTracked(f);
}

/** Gives the slot back: our INFLIGHT count first (marked in its run), then the state. */
function handBack(slot: number): void {
  const returning = slotWord(slot, S_RETURNING); // computed first: no call inside the run below
  Atomics.sub(b32, C.INFLIGHT, 1);
  b32[returning] = 1;
  // A parked reference travels back with the slot: the exporter that reclaims it drops it.
  Atomics.store(b32, slotWord(slot, S_STATE), RETURNED);
  settleSlot(board, slot);
  ringChanged(board);
  bump(board, C.CONSUMED);
}

async function consume(): Promise<void> {
  for (;;) {
    const seen = Atomics.load(b32, C.SEQ);
    const slot = take();
    if (slot < 0) {
      if (t.stopping() || Atomics.load(b32, C.EXPORTERS_LEFT) === 0) return;
      waitRing(board, seen, 5);
      continue;
    }
    const fence = importFence(slot);
    if (fence) {
      const it = begin(slot, fence);
      const w = waitFor(it);
      finish(it, typeof w === 'boolean' ? w : await w);
    }
    handBack(slot);
  }
}

await t.run(consume, () => {});
