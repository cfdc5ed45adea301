/**
 * A parent blocked on a lock word its dead worker held. The worker's reap runs at its 'exit'
 * event, on the parent's event loop, so a parent that blocks right after terminate() on something
 * the worker held used to wait forever: a free that needs a free-list lock, lock() or signal() on
 * a fence whose inline lock the worker held, a SpinLock of any kind. The waiter now sees from the
 * kernel that the holder's thread is gone and takes the word over (src/locks/owners.ts); the reap
 * still runs when the event comes, and the arena ends clean. A wait without timeout on a fence that
 * only the dead worker's reap would signal reaps it itself (src/fence/wait.ts). Each scenario runs in a parent worker
 * of its own, so that a regression fails here on a bound instead of hanging the suite.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { ownOsThread, osThreadGone } from '../src/arena/osthread.js';
import { Errno } from '../src/index.js';
import { fixture } from './support/core.js';

const BOUND_MS = 30_000;
const running: Worker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.terminate()));
});

interface Result {
  type: string;
  message?: string;
  detail: Record<string, unknown>;
  problems: string[];
  leaked: number;
  used: number;
  baseline: number;
}

/** Runs gone-parent with `data`; resolves its result, or { type: 'hung' } once BOUND_MS passed. */
async function scenario(data: Record<string, unknown>): Promise<Result> {
  const w = new Worker(fixture('gone-parent'), { workerData: data });
  running.push(w);
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    new Promise<Result>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    }),
    new Promise<Result>((resolve) => (timer = setTimeout(() => resolve({ type: 'hung' } as Result), BOUND_MS))),
  ]);
  clearTimeout(timer);
  expect(r.type, r.message ?? 'the parent stayed blocked on its dead worker\'s lock').toBe('result');
  expect(r.problems).toEqual([]);
  expect(r.leaked).toBe(0);
  expect(r.used).toBe(r.baseline);
  return r;
}

describe('a parent blocked on a word its terminated, not yet reaped worker held', () => {
  it('allocations and frees needing the free-list lock the worker held go through', async () => {
    const r = await scenario({ scenario: 'alloc' });
    expect(r.detail.blocks).toBe(2000);
  });

  it('lock() on a fence whose inline lock the worker held returns it', async () => {
    const r = await scenario({ scenario: 'fence-lock' });
    expect(r.detail.locked).toBe(true);
  });

  it('signal() on that fence signals it', async () => {
    const r = await scenario({ scenario: 'fence-signal' });
    expect(r.detail.waited).toBe(true);
  });

  it.each(['futex', 'tas', 'ttas', 'ticket'])('lock() on a %s SpinLock the worker held returns it, owner-died', async (kind) => {
    const r = await scenario({ scenario: 'spinlock', kind });
    expect(r.detail).toEqual({ locked: true, ownerDied: true });
  });

  it('lock() on a ticket SpinLock whose queue holds the worker\'s ticket ahead of ours passes it', async () => {
    const r = await scenario({ scenario: 'ticket-queued' });
    expect(r.detail).toEqual({ ticketsOut: 2, locked: true });
  });

  it('the reap still knows the word was held at death: a fence left mid-signal is signaled -EOWNERDEAD', async () => {
    const r = await scenario({ scenario: 'clobbered' });
    expect(r.detail).toEqual({ added: true, signaled: true, callbackErrors: [Errno.EOWNERDEAD] });
  });
});

describe('a parent blocked without timeout on a fence only its dead worker\'s reap signals', () => {
  it.each(['wait', 'wait-any'])('%s() reaps the worker, whose thread is gone: the fence ends -EOWNERDEAD', async (name) => {
    const r = await scenario({ scenario: name });
    expect(r.detail).toEqual({ waited: true, error: Errno.EOWNERDEAD });
  });
});

describe('thread identity from the kernel', () => {
  it('names this thread, which is not gone; a terminated worker is, and so is a reused id', async () => {
    const [tid, start] = ownOsThread();
    expect(tid).toBeGreaterThan(0);
    expect(osThreadGone(tid, start)).toBe(false);
    expect(osThreadGone(tid, start + 1)).toBe(true); // same id, another start: a new thread
    expect(osThreadGone(0, 0)).toBe(false); // unknown: never taken for gone
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const w = new Worker(
      `const { workerData } = require('node:worker_threads'); const fs = require('node:fs');
       const s = fs.readFileSync('/proc/thread-self/stat', 'utf8').slice(fs.readFileSync('/proc/thread-self/stat', 'utf8').lastIndexOf(')') + 2).split(' ');
       workerData[1] = Number(s[19]) % 0x7fffffff; Atomics.store(workerData, 0, Number(fs.readlinkSync('/proc/thread-self').split('/')[2]));
       Atomics.notify(workerData, 0); setInterval(() => {}, 1000);`,
      { eval: true, workerData: shared },
    );
    const exited = new Promise((r) => w.once('exit', r));
    for (let i = 0; i < 500 && Atomics.load(shared, 0) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const wt = Atomics.load(shared, 0);
    expect(osThreadGone(wt, shared[1])).toBe(false);
    await w.terminate();
    await exited;
    let gone = false;
    for (let i = 0; i < 500 && !gone; i++) {
      gone = osThreadGone(wt, shared[1]);
      if (!gone) await new Promise((r) => setTimeout(r, 10));
    }
    expect(gone).toBe(true);
  });
});
