/**
 * The per-thread callback dispatcher (docs/architecture.md, "Callbacks across threads"): a loop on `Atomics.waitAsync` over the thread
 * slot's doorbell that runs the callbacks other threads queued into this thread's inbox.
 *
 * Liveness: a pending `Atomics.waitAsync` does not keep Node alive, so an idle dispatcher never
 * holds process exit open. While this thread has function callbacks pending (registered and not
 * yet run or removed), the runtime holds one ref'd handle (keepalive.ts), so the process is not cut
 * short before they run. The dispatcher starts by itself when the thread adds its first function
 * callback; {@link startDispatcher} starts it explicitly. A worker that blocks its event loop
 * (Atomics.wait loops) calls {@link drain} or {@link waitInbox} instead.
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { onReap, ReapStage } from '../arena/hooks.js';
import * as FL from '../fence/layout.js';
import * as L from './layout.js';
import { onPendingCallbacks, pendingCallbackCount } from '../fence/callbacks.js';
import { discardInbox, drainInbox } from '../fence/inbox.js';
import { holdAlive, releaseAlive } from '../fence/keepalive.js';
import { Errors, describeValue, optionsArg } from '../errors.js';
import { checkTimeout } from '../timeout.js';

/** Where an error thrown by a callback goes (default: rethrown as an uncaught exception). */
export type DispatchErrorHandler = (error: unknown) => void;

/** One thread's dispatcher for one arena. */
export class Dispatcher {
  /** The arena whose inbox it drains (this thread's view). */
  readonly arena: Arena;
  /** Callbacks this dispatcher ran. */
  ran = 0;
  /** Times it woke up on the doorbell. */
  wakeups = 0;
  private stopped = false;
  private active = false;
  private onError: DispatchErrorHandler;

  /** Not public (one built by hand would skip its factory's checks): use {@link startDispatcher}. */
  private constructor(arena: Arena, onError: DispatchErrorHandler) {
    this.arena = arena;
    this.onError = onError;
  }

  /** @internal A dispatcher not yet running, for startDispatcher. */
  static make(arena: Arena, onError: DispatchErrorHandler): Dispatcher {
    return new Dispatcher(arena, onError);
  }

  /** True while the loop listens on the doorbell. */
  get running(): boolean {
    return this.active;
  }

  /** @internal */
  setErrorHandler(fn: DispatchErrorHandler): void {
    this.onError = fn;
  }

  /** @internal */
  async run(): Promise<void> {
    const arena = this.arena;
    const i32 = arena.i32;
    const bell = arena.slotBase + FL.T_DOORBELL;
    const inbox = arena.slotBase + FL.T_INBOX;
    this.active = true;
    Atomics.store(i32, arena.slotBase + L.T_DISPATCHING, 1);
    // Start on a later microtask: the pending-callback listener may start us with a fence lock held.
    await null;
    try {
      while (!this.stopped && !arena.isDetached) {
        // Read the doorbell before draining: a push after the drain moves it, so the wait below
        // returns at once instead of sleeping on a queued callback (no lost wake-up).
        const seen = Atomics.load(i32, bell);
        if (Atomics.load(i32, inbox) !== 0) {
          try {
            this.ran += drainInbox(arena);
          } catch (e) {
            this.onError(e);
          }
          continue;
        }
        const r = Atomics.waitAsync(i32, bell, seen);
        if (r.async) await r.value;
        this.wakeups++;
      }
    } finally {
      this.active = false;
      if (!arena.isDetached) Atomics.store(i32, arena.slotBase + L.T_DISPATCHING, 0);
      if (dispatchers.get(arena) === this) dispatchers.delete(arena);
    }
  }

  /**
   * Stops the loop (it exits at its next wake-up, which this triggers). Callbacks still queued stay
   * in the inbox for {@link drain} or a new dispatcher. Threads: the owner.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const i32 = this.arena.i32;
    Atomics.add(i32, this.arena.slotBase + FL.T_DOORBELL, 1);
    Atomics.notify(i32, this.arena.slotBase + FL.T_DOORBELL);
  }
}

const dispatchers = new Map<Arena, Dispatcher>();
let autoStart = true;
let held = false;

function rethrow(e: unknown): void {
  process.nextTick(() => {
    throw e;
  });
}

/**
 * Starts this thread's dispatcher for `arena` (or returns the running one).
 * Threads: any attached thread with an event loop. Locks: none; the loop's first drain happens on
 * a later microtask. Returns the Dispatcher. Throws EINVAL (not an Arena, a detached arena, options:
 * an unknown key, `onError` not a function), before anything starts.
 */
export function startDispatcher(arena: Arena, options?: { onError?: DispatchErrorHandler }): Dispatcher {
  arenaArg(arena, 'startDispatcher');
  const onError = optionsArg(options, 'startDispatcher', ['onError']).onError;
  if (onError !== undefined && typeof onError !== 'function')
    throw Errors.invalid(`startDispatcher: options.onError must be a function, got ${describeValue(onError)}`);
  if (arena.isDetached) throw Errors.invalid('startDispatcher on a detached arena');
  let d = dispatchers.get(arena);
  if (d) {
    if (onError) d.setErrorHandler(onError);
    return d;
  }
  d = Dispatcher.make(arena, onError ?? rethrow);
  dispatchers.set(arena, d);
  void d.run();
  return d;
}

/** Stops this thread's dispatcher for `arena`, if any. Returns whether one was running. Throws EINVAL (not an Arena). */
export function stopDispatcher(arena: Arena): boolean {
  arenaArg(arena, 'stopDispatcher');
  const d = dispatchers.get(arena);
  if (!d) return false;
  dispatchers.delete(arena);
  d.stop();
  return true;
}

/** The running dispatcher of this thread for `arena`, or undefined. Throws EINVAL (not an Arena). */
export function dispatcherOf(arena: Arena): Dispatcher | undefined {
  arenaArg(arena, 'dispatcherOf');
  return dispatchers.get(arena);
}

/**
 * Whether adding a first callback starts the dispatcher by itself (default true). A worker that
 * never returns to its event loop may turn it off and {@link drain} instead.
 */
export function setAutoDispatch(on: boolean): void {
  autoStart = on;
}

/**
 * Runs every callback queued for this thread now (a blocking worker's dispatcher). Threads: the
 * owner. Returns how many ran; a throwing callback does not stop the others, the first error is
 * rethrown after all ran. Throws EINVAL (not an Arena).
 */
export function drain(arena: Arena): number {
  return drainInbox(arenaArg(arena, 'drain'));
}

/**
 * Blocks (Atomics.wait on the doorbell) until at least one queued callback ran or `timeoutMs`
 * passed. Threads: workers (on the main thread it blocks the event loop). Returns how many ran.
 * Throws EINVAL (not an Arena, a bad timeout).
 */
export function waitInbox(arena: Arena, timeoutMs = Infinity): number {
  arenaArg(arena, 'waitInbox');
  checkTimeout(timeoutMs, 'waitInbox timeoutMs');
  const i32 = arena.i32;
  const bell = arena.slotBase + FL.T_DOORBELL;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    // The doorbell before the drain: a push after the drain moves it, so the wait returns at once.
    const seen = Atomics.load(i32, bell);
    const n = drainInbox(arena);
    if (n > 0 || performance.now() >= deadline) return n;
    Atomics.wait(i32, bell, seen, deadline - performance.now());
  }
}

/** Function callbacks of this thread not yet run or removed (all arenas). */
export function pendingCallbacks(): number {
  return pendingCallbackCount();
}

onPendingCallbacks((arena, pending) => {
  if (pending) {
    if (!held) {
      held = true;
      holdAlive();
    }
    if (autoStart && !arena.isDetached && !dispatchers.has(arena)) startDispatcher(arena);
  } else if (held) {
    held = false;
    releaseAlive();
  }
});

onReap(ReapStage.DISPATCH, (arena, slot) => {
  if (slot === arena.slot) {
    // Detach: callbacks already delivered to us still run (exactly once), then the loop stops.
    stopDispatcher(arena);
    drainInbox(arena);
  } else {
    discardInbox(arena, slot);
  }
});
