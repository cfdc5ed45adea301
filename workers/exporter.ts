/**
 * The exporter worker: runs a driver (its own, or the parent's by handle), exactly the RFC's
 * driver. For each operation: claim a ring slot, submit (the out-fence borrows the operation's
 * lock, or has the inline lock, per the driver's lock mode), set the operation up under its own
 * lock, hand the out-fence off to importers (a parked reference or a sync-file fd), and — `depth`
 * operations later — execute it or cancel it (the ioctl in its own context): either signals the
 * out-fence and then frees the operation, and the lock a borrowing fence still points to with it.
 * Every critical section is watched by the board's guard, so broken mutual exclusion is counted,
 * not guessed. All randomness comes from the worker's seeded PRNG. Options: EngineOptions.
 */
import { Driver, Errno, SpinLock, drain, pendingCallbacks, setAutoDispatch, waitInbox, type Fence, type Operation } from '../src/index.js';
import { C, EX_CB_RAN, EXF_DRIVER, bump, waitRing } from './board.js';
import { EngineThread } from './engine.js';
import { RingExporter, plannedExpect } from './ring.js';

// This worker blocks in execute() and in ring waits: it drains its inbox itself.
setAutoDispatch(false);
const t = new EngineThread();
const { cfg, arena, board } = t;
const ring = new RingExporter(arena, board, t.index);
const commands = cfg.commandRate > 0;

interface InFlight {
  op: Operation;
  slot: number;
  cancel: boolean;
  lock: SpinLock;
}

/** Our own callback on an out-fence: it must run exactly once, here. */
function watchSignal(fence: Fence): void {
  let runs = 0;
  fence.addCallback(() => {
    if (++runs > 1) bump(board, C.DOUBLE_SIGNALS);
    Atomics.add(board.i32, EX_CB_RAN + t.index, 1);
  });
}

function publish(drv: Driver, slot: number): InFlight {
  ring.submitting(slot);
  const op = drv.submit({ durationUs: Math.round(t.jittered(cfg.workUs)) });
  const lock = SpinLock.at(arena, op.handle); // the operation's own lock: word 0 of its block
  // The driver sets its operation up under the operation's own lock.
  t.critical((ms) => lock.lock(ms), () => lock.unlock(), lock.index, t.jittered(cfg.csUs) / 2, () => lock.ownerDied);
  ring.counted(slot);
  if (cfg.exporterCallbacks) watchSignal(op.fence);
  // A driver that always signals: enabling now means importers never need the lock for it.
  op.fence.enableSignaling();
  const cancel = t.rng() < cfg.cancelRate;
  ring.handOff(slot, op.fence, op.handle, plannedExpect(cancel, commands));
  return { op, slot, cancel, lock };
}

/** Executes or cancels `f`, the oldest of the operations in flight (`later` are the others). */
function end(drv: Driver, f: InFlight, later: readonly InFlight[]): void {
  if (cfg.awaitTake) ring.awaitTake(f.slot, later.map((x) => x.slot), cfg.waitTimeoutMs, () => t.stopping());
  // Part of the execution under the operation's lock, like a driver updating its state — unless
  // importers may delete the operation meanwhile: then only execute() touches it.
  if (!commands) {
    const lock = f.lock;
    t.critical((ms) => lock.lock(ms), () => lock.unlock(), lock.index, t.jittered(cfg.csUs), () => lock.ownerDied);
  }
  // Cancel or execute: either signals the out-fence, then frees the operation. A cancel that finds
  // it ended by an importer's command lets execute() tell how it ended.
  const status = f.cancel && drv.cancel(f.op.handle) ? Errno.ECANCELED : drv.execute(f.op);
  ring.ended(f.slot, status);
  if (cfg.exporterCallbacks) drain(arena); // ours, signaled by other threads
}

function produce(drv: Driver): void {
  const queue: InFlight[] = [];
  const stopping = () => t.stopping();
  let made = 0;
  for (;;) {
    const more = (cfg.ops === 0 || made < cfg.ops) && !t.stopping();
    if (more && queue.length < cfg.depth) {
      // Wait for a slot only with nothing queued to execute meanwhile.
      const slot = ring.claim(cfg.maxInflight, queue.length === 0, stopping);
      if (slot >= 0) {
        queue.push(publish(drv, slot));
        made++;
        continue;
      }
    }
    const next = queue.shift();
    if (next) end(drv, next, queue);
    else if (!more) return;
  }
}

/** Our fds and tokens stay valid until their importers took them (detach closes or withdraws what we made): wait. */
function awaitHandBacks(): void {
  let left = ring.outstanding();
  let deadline = performance.now() + cfg.waitTimeoutMs;
  while (left > 0 && !t.stopping() && performance.now() < deadline) {
    waitRing(board, Atomics.load(board.i32, C.SEQ), 5);
    const now = ring.outstanding();
    if (now < left) deadline = performance.now() + cfg.waitTimeoutMs;
    left = now;
  }
}

/** Callbacks of ours that other threads signaled arrive in our inbox: run them all. */
function awaitOwnCallbacks(): void {
  const deadline = performance.now() + cfg.waitTimeoutMs;
  while (pendingCallbacks() > 0 && performance.now() < deadline) waitInbox(arena, 50);
}

let driver: Driver | undefined;
await t.run(
  () => {
    driver = cfg.driver !== 0 ? Driver.fromHandle(arena, cfg.driver) : Driver.create(arena, { lockMode: cfg.lockMode });
    // Importers send their commands to the driver named here (a word per exporter).
    board.f64[EXF_DRIVER + t.index] = driver.handle;
    produce(driver);
    if (ring.fdCarrier || ring.tokenCarrier) awaitHandBacks();
    awaitOwnCallbacks();
  },
  () => {
    if (driver && cfg.driver === 0) driver.destroy();
    ring.leave();
  },
);
