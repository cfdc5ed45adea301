/**
 * Runs before every test file (vitest setupFiles): a reap hook that threw is a fencelab bug, and
 * the reaper reports it only as a process warning (it keeps recovering the rest of the dead
 * thread's state), so every test fails on one instead of passing over it.
 */
import { afterEach, expect } from 'vitest';
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
