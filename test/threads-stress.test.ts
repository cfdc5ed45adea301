/**
 * N exporters × M importers × K operations with random cancels and deletes (direct ioctl and the
 * command ring), in real workers: every fence signaled exactly once, every callback run exactly
 * once (or removed), every reference dropped, zero leaked bytes. Bounded waits throughout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Errno } from '../src/index.js';
import { expectClean } from './support/core.js';
import {
  finishImporters, startScenario, terminateAll, STRIDE, T_EXP_CB, T_IMP_CB, T_IMPORTS, T_REFUSED, T_REMOVED, T_STATUS,
  type Scenario,
} from './support/threads.js';

let current: Scenario | undefined;
afterEach(async () => {
  await terminateAll(current);
  current = undefined;
});

async function run(seed: string, exportAs: 'fd' | 'handle'): Promise<void> {
  const N = 3;
  const M = 3;
  const K = 150;
  const s = (current = await startScenario({ n: N, m: M, k: K, seed, exportAs, cancelRate: 0.35, removeRate: 0.2 }));
  const done = await Promise.all(s.exporters.map((w) => w.next('done', 30_000)));
  const sent = done.map((d) => d.sent as number[]);
  const stats = await finishImporters(s, sent);
  for (const w of s.exporters) w.post({ type: 'exit' });
  for (const w of [...s.exporters, ...s.importers]) expect(await w.exited(10_000)).toBe(0);
  const t = s.tally;
  let canceledSeen = 0;
  for (let i = 0; i < s.total; i++) {
    const b = i * STRIDE;
    // Signaled exactly once: the exporter's own callback ran once, and every importer view agrees.
    expect(t[b + T_EXP_CB], `fence ${i} exporter callback`).toBe(1);
    expect(t[b + T_IMPORTS], `fence ${i} imports`).toBe(1);
    expect(t[b + T_IMP_CB] + t[b + T_REMOVED] + t[b + T_REFUSED], `fence ${i} importer callback`).toBe(1);
    expect([1, Errno.ECANCELED]).toContain(t[b + T_STATUS]);
    if (t[b + T_STATUS] === Errno.ECANCELED) canceledSeen++;
  }
  let ended = 0;
  let canceled = 0;
  for (const d of s.drivers) {
    const c = d.counters;
    expect(c.submitted).toBe(K);
    expect(c.completed + c.canceled + c.deleted).toBe(K);
    expect(c.aborted).toBe(0);
    expect(c.freed).toBe(K);
    expect(c.live).toBe(0);
    ended += c.completed + c.canceled + c.deleted;
    canceled += c.canceled + c.deleted;
  }
  expect(ended).toBe(N * K);
  expect(canceled).toBe(canceledSeen);
  // The exporters' own view: execute() returned -ECANCELED exactly for the fences ended by a command.
  const execCanceled = done.reduce((a, d) => a + (d.results as number[]).filter((r) => r === Errno.ECANCELED).length, 0);
  expect(execCanceled).toBe(canceledSeen);
  expect(stats.reduce((a, x) => a + x.timeouts, 0)).toBe(0);
  expect(stats.reduce((a, x) => a + x.badFd, 0)).toBe(0);
  // Cancels actually raced: some commands won, some found the operation already ended.
  expect(canceled).toBeGreaterThan(0);
  expect(canceled).toBeLessThan(N * K);
  for (const d of s.drivers) d.destroy();
  expectClean(s.arena);
}

describe('exporters × importers × operations', () => {
  it('3 × 3 × 150 with sync-file fds and random cancels', async () => {
    await run('fds-1', 'fd');
  }, 60_000);

  it('3 × 3 × 150 with fence handles and random cancels', async () => {
    await run('handles-1', 'handle');
  }, 60_000);
});
