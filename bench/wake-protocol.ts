/**
 * Shared-memory protocol between bench/wake.bench.ts (the parent) and bench/wake-worker.ts.
 *
 * The parent drives every round through an Int32 control block (no postMessage on the measured
 * paths): it writes MODE / DELAY_NS (and T_HANDLE), then bumps CMD to a new round number and notifies.
 * The worker runs the mode and stores the round number into DONE. Times are CLOCK_MONOTONIC ns
 * (`process.hrtime.bigint()`, the same clock in every thread) in a BigInt64 block.
 */

/** Int32 indices of the control block. */
export const C_CMD = 0; // round number of the current command (parent writes, worker waits on it)
export const C_MODE = 1; // one of the M_* modes
// word 2 is unused: fence handles exceed 32 bits, they travel in T_HANDLE
export const C_ARMED = 3; // round number, written just before the raw wait / spin / waitAsync
export const C_DONE = 4; // round number, written by the worker when the round is over
export const C_ERR = 5; // non-zero once the worker failed (the message is posted)
export const C_DELAY_NS = 6; // signaler modes: busy delay between "waiter armed" and the signal
export const C_SLEPT = 7; // 1 when the waiter of the round really slept (raw: Atomics.wait returned 'ok'; fence: WAITERS seen)
/** The raw word, on its own 128-byte line, away from the control words. */
export const C_RAW = 32;
export const CTL_WORDS = 64;

/** BigInt64 indices of the time block. */
export const T_WAKE = 0; // waiter modes: when the waiter returned from its wait
export const T_SIGNAL = 8; // signaler modes: just before signal()/notify()
export const T_ECHO = 16; // echo worker: when the message arrived
export const T_HANDLE = 20; // fence handle for the fence modes (a handle is an integer up to 2^53)
export const TIME_WORDS = 24;

/** Waiter modes (the parent signals). */
export const M_STOP = 0;
export const M_FENCE_SLEEP = 1; // fence.wait() with Fence.spinMicros = 0
export const M_RAW_SLEEP = 2; // Atomics.wait on C_RAW
export const M_FENCE_SPIN = 3; // fence.wait() with the default spin (Fence.spinMicros as the parent passed it)
export const M_RAW_SPIN = 4; // loop on Atomics.load(C_RAW)
/** Signaler modes (the parent waits asynchronously). */
export const M_SIGNAL_FENCE = 5; // wait for the fence's WAITERS bit, delay, signal()
export const M_NOTIFY_RAW = 6; // wait for C_ARMED, delay, store + Atomics.notify(C_RAW)

/** Bound on every wait of the protocol: a bug fails the bench instead of hanging it. */
export const PROTOCOL_TIMEOUT_MS = 5000;
