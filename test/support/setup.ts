/**
 * Runs before every test file (vitest setupFiles): a reap hook that threw is a fencelab bug, and
 * the reaper reports it only as a process warning (it keeps recovering the rest of the dead
 * thread's state), so every test fails on one instead of passing over it. And a watchdog (below)
 * turns a test thread blocked for good into a failed file instead of a run that never ends.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, expect } from 'vitest';
import { REAP_FAILED } from '../../src/arena/hooks.js';

const failures: string[] = [];
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code === REAP_FAILED) failures.push(w.message);
});

/** The reap failures reported so far, claimed (a test that makes a hook throw on purpose takes them). */
export function takeReapFailures(): string[] {
  return failures.splice(0);
}

afterEach(async () => {
  await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
  expect(failures.splice(0), 'reap hooks that threw').toEqual([]);
});

/*
 * A test thread blocked in a synchronous wait cannot be stopped by vitest's timeouts (they are
 * timers on the blocked event loop), and the whole run then sits until CI's own limit with nothing
 * said. A watchdog thread per test file reads a heartbeat the test thread's event loop writes;
 * after STALL_S seconds (FENCELAB_WATCHDOG_S) without one it names the test on stderr and kills this fork, so that the
 * file fails, the run goes on, and the report says where it hung.
 */
const STALL_S = Number(process.env.FENCELAB_WATCHDOG_S ?? 300);
const beat = new Int32Array(new SharedArrayBuffer(8 + 1024));
const now = (): number => Math.floor(Date.now() / 1000);
Atomics.store(beat, 0, now());
setInterval(() => Atomics.store(beat, 0, now()), 1000).unref();
beforeEach(() => {
  const name = new TextEncoder().encode(`${expect.getState().testPath ?? ''} > ${expect.getState().currentTestName ?? ''}`).subarray(0, 1024);
  new Uint8Array(beat.buffer, 8).set(name);
  Atomics.store(beat, 1, name.length);
});
new Worker(
  `const { workerData: [beat, stall] } = require('node:worker_threads');
   const fs = require('node:fs');
   const nap = new Int32Array(new SharedArrayBuffer(4));
   for (;;) {
     Atomics.wait(nap, 0, 0, Math.min(5000, stall * 250));
     const quiet = Math.floor(Date.now() / 1000) - Atomics.load(beat, 0);
     if (quiet < stall) continue;
     const name = Buffer.from(beat.buffer, 8, Atomics.load(beat, 1)).toString('utf8');
     fs.writeSync(2, '\\nwatchdog: the test thread has been blocked for ' + quiet + ' s in ' + name + '; killing this test file\\'s process so that the run goes on\\n');
     process.kill(process.pid, 'SIGKILL');
   }`,
  { eval: true, workerData: [beat, STALL_S] },
).unref();
