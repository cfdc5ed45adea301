/**
 * Worker fixture of bench/wake.bench.ts (protocol: bench/wake-protocol.ts).
 *
 * role 'waiter': attaches to the arena, then loops on the control block: each round it either
 * waits (fence or raw, sleeping or spinning) for the parent's signal and stores its wake time, or
 * signals (fence or raw) for the parent's async waiter after a busy delay and stores the signal
 * time. Between rounds it spins briefly on C_CMD, then sleeps on it.
 * role 'echo': answers each message with the same message and stores its arrival time (T_ECHO),
 * for the postMessage round-trip baseline.
 *
 * workerData: { role, buffer (arena), ctl, times, spinMicros }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence } from '../src/index.js';
import { F_FLAGS, FLAG_WAITERS } from '../src/fence/layout.js';
import * as P from './wake-protocol.js';

const { role, buffer, ctl: ctlBuf, times: timesBuf, spinMicros } = workerData as {
  role: 'waiter' | 'echo';
  buffer: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  times: SharedArrayBuffer;
  spinMicros: number;
};
const ctl = new Int32Array(ctlBuf);
const times = new BigInt64Array(timesBuf);

/**
 * Spin on C_CMD this long after a round before sleeping: the next round usually comes at once. Kept
 * short: when the scheduler puts this thread on the parent's core, a long idle spin would stall
 * the parent (and show up as signaler cost).
 */
const IDLE_SPIN_MS = 0.03;

function fail(e: unknown): never {
  Atomics.store(ctl, P.C_ERR, 1);
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e) });
  throw e;
}

/** Busy-waits `ns` nanoseconds. */
function busyNs(ns: number): void {
  const end = performance.now() + ns / 1e6;
  while (performance.now() < end);
}

/** Waits for C_CMD to move past `last`: spins, then sleeps. Returns the new round number. */
function nextCommand(last: number): number {
  const spinEnd = performance.now() + IDLE_SPIN_MS;
  for (;;) {
    for (let k = 0; k < 64; k++) {
      const c = Atomics.load(ctl, P.C_CMD);
      if (c !== last) return c;
    }
    if (performance.now() >= spinEnd) break;
  }
  const idleDeadline = performance.now() + 120_000;
  for (;;) {
    const c = Atomics.load(ctl, P.C_CMD);
    if (c !== last) return c;
    if (performance.now() > idleDeadline) fail(new Error('wake-worker: no command for 120 s'));
    Atomics.wait(ctl, P.C_CMD, last, 1000);
  }
}

function waiterLoop(): void {
  const arena = Arena.attach(buffer);
  const i32 = arena.i32;
  let last = 0;
  for (;;) {
    const round = nextCommand(last);
    last = round;
    const mode = Atomics.load(ctl, P.C_MODE);
    if (mode === P.M_STOP) break;
    let slept = 0;
    switch (mode) {
      case P.M_FENCE_SLEEP:
      case P.M_FENCE_SPIN: {
        const f = Fence.fromHandle(arena, Number(Atomics.load(times, P.T_HANDLE)));
        Fence.spinMicros = mode === P.M_FENCE_SLEEP ? 0 : spinMicros;
        Atomics.store(ctl, P.C_ARMED, round);
        const ok = f.wait(P.PROTOCOL_TIMEOUT_MS);
        const t = process.hrtime.bigint();
        if (!ok) fail(new Error(`wake-worker: fence wait timed out in round ${round}`));
        Atomics.store(times, P.T_WAKE, t);
        slept = Atomics.load(i32, f.fw + F_FLAGS) & FLAG_WAITERS ? 1 : 0;
        break;
      }
      case P.M_RAW_SLEEP: {
        Atomics.store(ctl, P.C_ARMED, round);
        const r = Atomics.wait(ctl, P.C_RAW, 0, P.PROTOCOL_TIMEOUT_MS);
        const t = process.hrtime.bigint();
        if (r === 'timed-out') fail(new Error(`wake-worker: raw wait timed out in round ${round}`));
        Atomics.store(times, P.T_WAKE, t);
        slept = r === 'ok' ? 1 : 0;
        break;
      }
      case P.M_RAW_SPIN: {
        Atomics.store(ctl, P.C_ARMED, round);
        const end = performance.now() + P.PROTOCOL_TIMEOUT_MS;
        for (;;) {
          let seen = false;
          for (let k = 0; k < 64; k++) {
            if (Atomics.load(ctl, P.C_RAW) !== 0) {
              seen = true;
              break;
            }
          }
          if (seen) break;
          if (performance.now() > end) fail(new Error(`wake-worker: raw spin timed out in round ${round}`));
        }
        Atomics.store(times, P.T_WAKE, process.hrtime.bigint());
        break;
      }
      case P.M_SIGNAL_FENCE: {
        const f = Fence.fromHandle(arena, Number(Atomics.load(times, P.T_HANDLE)));
        const idx = f.fw + F_FLAGS;
        const end = performance.now() + P.PROTOCOL_TIMEOUT_MS;
        while ((Atomics.load(i32, idx) & FLAG_WAITERS) === 0) {
          if (performance.now() > end) fail(new Error(`wake-worker: no async fence waiter in round ${round}`));
        }
        busyNs(Atomics.load(ctl, P.C_DELAY_NS));
        Atomics.store(times, P.T_SIGNAL, process.hrtime.bigint());
        f.signal();
        break;
      }
      case P.M_NOTIFY_RAW: {
        const end = performance.now() + P.PROTOCOL_TIMEOUT_MS;
        while (Atomics.load(ctl, P.C_ARMED) !== round) {
          if (performance.now() > end) fail(new Error(`wake-worker: no async raw waiter in round ${round}`));
        }
        busyNs(Atomics.load(ctl, P.C_DELAY_NS));
        Atomics.store(times, P.T_SIGNAL, process.hrtime.bigint());
        Atomics.store(ctl, P.C_RAW, 1);
        Atomics.notify(ctl, P.C_RAW);
        break;
      }
      default:
        fail(new Error(`wake-worker: unknown mode ${mode}`));
    }
    Atomics.store(ctl, P.C_SLEPT, slept);
    Atomics.store(ctl, P.C_DONE, round);
    Atomics.notify(ctl, P.C_DONE); // the parent may sleep on it (see the parent's awaitDone)
  }
  arena.detach();
  parentPort!.postMessage({ type: 'stopped' });
}

try {
  if (role === 'echo') {
    parentPort!.on('message', (m: unknown) => {
      if (m === 'stop') {
        parentPort!.close();
        return;
      }
      Atomics.store(times, P.T_ECHO, process.hrtime.bigint());
      parentPort!.postMessage(m);
    });
  } else {
    waiterLoop();
  }
} catch (e) {
  if (Atomics.load(ctl, P.C_ERR) === 0) fail(e);
}
