/**
 * Importer worker: receives exported fences ({ type: 'fence', fd | handle, op, driver, index }) on
 * its port and, for each: imports it (SyncFile.getFence + close, or the handle's reference),
 * tracks the reference, adds a callback, sometimes cancels/deletes the operation (directly or
 * through the driver's command ring), queries the status under the fence lock, holds the fence for
 * a random time, sometimes removes its callback, waits (sync or async), records the final status
 * and puts the reference.
 *
 * workerData: { buffer, seed, cancelRate, removeRate, holdMaxMs, waitMode: 'sync' | 'async' | 'mixed',
 *   tally: SharedArrayBuffer, stride }; fences arrive on the ports of { type: 'ports', ports } (transferred,
 *   one per exporter; may come more than once).
 * Tally words per fence (after the exporter's [0]): [1] importer callback runs, [2] removed,
 * [3] refused (already signaled when added), [4] final status, [5] imports.
 * Messages in on parentPort: { type: 'finish', expected } → once `expected` fences arrived and
 * nothing is in flight: { type: 'done', stats }, detach, exit.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import {
  Arena, Driver, DriverCmd, Fence, FenceError, SyncFile, importFd, pendingCallbacks, putTracked, trackRef,
} from '../src/index.js';

interface Data {
  buffer: SharedArrayBuffer;
  seed: string;
  cancelRate: number;
  removeRate: number;
  holdMaxMs: number;
  waitMode: 'sync' | 'async' | 'mixed';
  tally: SharedArrayBuffer;
  stride: number;
}
interface FenceMsg {
  type: string;
  fd?: number;
  handle?: number;
  op: number;
  driver: number;
  index: number;
}

const wd = workerData as Data;
const arena = Arena.attach(wd.buffer);
const rand = seedrandom(wd.seed);
const tally = new Int32Array(wd.tally);
const S = wd.stride;
const drivers = new Map<number, Driver>();
const stats = { imported: 0, badFd: 0, cancels: 0, canceledHere: 0, ioctls: 0, ringFull: 0, timeouts: 0, lockedQueries: 0, received: 0 };
let inflight = 0;
let finishing = false;
let expected = -1;
const ports: MessagePort[] = [];

function driverOf(h: number): Driver {
  let d = drivers.get(h);
  if (!d) drivers.set(h, (d = Driver.fromHandle(arena, h)));
  return d;
}

function report(e: unknown): void {
  parentPort!.postMessage({ type: 'error', code: (e as { code?: string }).code, message: String((e as Error)?.stack ?? e) });
}

function maybeFinish(): void {
  if (!finishing || inflight > 0 || stats.received < expected) return;
  if (pendingCallbacks() > 0) {
    setTimeout(maybeFinish, 1);
    return;
  }
  finishing = false;
  parentPort!.postMessage({ type: 'done', stats, slot: arena.slot });
  for (const p of ports) p.close();
  arena.detach();
  parentPort!.close();
}

function importOne(m: FenceMsg): Fence | null {
  if (m.fd !== undefined) {
    let f: Fence | null;
    try {
      // Taken and recorded in one step: a terminate() here cannot leak the reference.
      f = importFd(arena, m.fd);
    } catch (e) {
      // The exporter died and its fds were closed by the reaper: nothing to import.
      if (e instanceof FenceError && e.code === 'EBADF') {
        stats.badFd++;
        return null;
      }
      throw e;
    }
    SyncFile.close(arena, m.fd);
    return f;
  }
  return trackRef(Fence.fromHandle(arena, m.handle!));
}

async function handle(m: FenceMsg): Promise<void> {
  const f = importOne(m);
  if (!f) return;
  const i = m.index;
  stats.imported++;
  Atomics.add(tally, i * S + 5, 1);
  const cb = f.addCallback(() => Atomics.add(tally, i * S + 1, 1));
  if (!cb) Atomics.add(tally, i * S + 3, 1);
  if (rand() < wd.cancelRate) {
    const d = driverOf(m.driver);
    stats.cancels++;
    const cmd = rand() < 0.5 ? DriverCmd.DELETE : DriverCmd.CANCEL;
    if (rand() < 0.5) {
      if (d.command(cmd, m.op)) stats.canceledHere++;
    } else if (d.ioctl(cmd, m.op)) {
      stats.ioctls++;
    } else {
      stats.ringFull++;
    }
  }
  // Status under the fence lock (kernel: dma_fence_get_status takes the lock).
  f.withLock(() => f.testSignaledFlag());
  stats.lockedQueries++;
  const hold = rand() * wd.holdMaxMs;
  if (hold > 0) await new Promise((r) => setTimeout(r, hold));
  if (cb && rand() < wd.removeRate && f.removeCallback(cb)) Atomics.add(tally, i * S + 2, 1);
  const sync = wd.waitMode === 'sync' || (wd.waitMode === 'mixed' && rand() < 0.5);
  const ok = sync ? f.wait(10_000) : await f.waitAsync(10_000);
  if (!ok) stats.timeouts++;
  Atomics.store(tally, i * S + 4, f.status());
  putTracked(f);
}

function onFence(m: FenceMsg): void {
  stats.received++;
  inflight++;
  handle(m)
    .catch(report)
    .finally(() => {
      inflight--;
      maybeFinish();
    });
}
parentPort!.on('message', (m: { type: string; expected: number; ports: MessagePort[] }) => {
  if (m.type === 'ports') {
    for (const p of m.ports) {
      ports.push(p);
      p.on('message', onFence);
    }
    parentPort!.postMessage({ type: 'listening' });
  } else if (m.type === 'finish') {
    finishing = true;
    expected = m.expected;
    maybeFinish();
  }
});
parentPort!.postMessage({ type: 'ready', slot: arena.slot });
