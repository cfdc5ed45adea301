/**
 * N exporters × M importers × K operations with random cancels and deletes (run in place and
 * through the driver's command ring), in the engine's real workers: every fence signaled exactly
 * once, every callback run exactly once (or removed), every status the one its exporter saw,
 * every reference dropped, zero leaked bytes. Bounded waits throughout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { C, EX_CB_RAN, EX_DONE } from '../workers/board.js';
import { expectClean } from './support/core.js';
import { startScenario, stopScenario, type Scenario } from './support/threads.js';

let current: Scenario | undefined;
afterEach(async () => {
  await stopScenario(current);
  current = undefined;
});

async function run(seed: string, carrier: 'fd' | 'handle' | 'token'): Promise<void> {
  const N = 3;
  const M = 3;
  const K = 150;
  const s = (current = startScenario({ n: N, m: M, k: K, seed, carrier, engine: { commandRate: 0.35, removeRate: 0.2 } }));
  const { crew } = s;
  await crew.settled();
  expect(crew.errors).toEqual([]);
  const total = N * K;
  expect(crew.count(C.FENCES)).toBe(total);
  expect(crew.count(C.CONSUMED)).toBe(total); // each fence imported once
  expect(crew.count(C.INFLIGHT)).toBe(0);
  // Signaled exactly once: each exporter's own callback ran once per fence, never twice.
  for (const e of s.exporters) {
    expect(crew.word(EX_DONE, e.index), `exporter ${e.index} operations`).toBe(K);
    expect(crew.word(EX_CB_RAN, e.index), `exporter ${e.index} callbacks`).toBe(K);
  }
  expect(crew.count(C.SIGNALS)).toBe(total);
  expect(crew.count(C.DOUBLE_SIGNALS)).toBe(0);
  // Every importer callback ran exactly once, or was removed, or refused (already signaled).
  const added = crew.count(C.CB_ADDED);
  expect(added).toBe(total);
  expect(crew.count(C.CB_RAN) + crew.count(C.CB_REMOVED) + crew.count(C.CB_LATE)).toBe(added);
  expect(crew.count(C.CB_DOUBLE)).toBe(0);
  // Each status was the one its exporter's execute() returned (1 or -ECANCELED).
  expect(crew.count(C.STATUS_MISMATCH)).toBe(0);
  for (const c of [C.HANGS, C.ERRORS, C.BAD_FD, C.ME_VIOLATIONS, C.LOCK_ERRORS, C.SEEN_NODEV]) expect(crew.count(c), `counter ${c}`).toBe(0);
  let canceled = 0;
  for (const d of s.drivers) {
    const c = d.counters;
    expect(c.submitted).toBe(K);
    expect(c.completed + c.canceled + c.deleted).toBe(K);
    expect(c.aborted).toBe(0);
    expect(c.freed).toBe(K);
    expect(c.live).toBe(0);
    canceled += c.canceled + c.deleted;
  }
  // The drivers, the exporters (execute() returned -ECANCELED) and the importers (the fence's
  // status) agree on which operations a command ended.
  expect(crew.count(C.CANCELLED)).toBe(canceled);
  expect(crew.count(C.SEEN_CANCELED)).toBe(canceled);
  // Cancels actually raced: some commands won, some found the operation already ended.
  expect(crew.count(C.COMMANDS)).toBeGreaterThan(0);
  expect(canceled).toBeGreaterThan(0);
  expect(canceled).toBeLessThan(total);
  crew.sweep();
  for (const d of s.drivers) d.destroy();
  expectClean(s.arena);
}

describe('exporters × importers × operations', () => {
  it('3 × 3 × 150 with sync-file fds and random cancels', async () => {
    await run('fds-1', 'fd');
  });

  it('3 × 3 × 150 with parked fence references and random cancels', async () => {
    await run('handles-1', 'handle');
  });

  it('3 × 3 × 150 with hand-over tokens (share → receive) and random cancels', async () => {
    await run('tokens-1', 'token');
  });
});
