/**
 * Fixture for the sync_file suite: uses fds made in another thread.
 * - `lookup`: `rounds` passes over `fds`: getFence + put and info on each; counts successes and
 *   EBADF (the main thread closes the fds meanwhile).
 * - `own`: exports the fence behind `fence` (a reference the sender took for us) as `count` fds,
 *   drops that reference, reports the fds and stays alive until terminated.
 * - `churn`: creates and closes fds of `fence` `rounds` times, checking every fd names its fence.
 * - `hold`: takes the lock of `fence` (a sw_sync point: the timeline's lock), exports one fd of its
 *   own, reports it and stays alive, lock held, until terminated.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceError, SyncFile } from '../src/index.js';

interface Data {
  buffer: SharedArrayBuffer;
  mode: 'lookup' | 'own' | 'churn' | 'hold';
  fds?: number[];
  fence?: number;
  rounds?: number;
  count?: number;
}
const d = workerData as Data;
const arena = Arena.attach(d.buffer);

function isBadFd(e: unknown): boolean {
  return e instanceof FenceError && e.code === 'EBADF';
}

try {
  if (d.mode === 'lookup') {
    let ok = 0;
    let badf = 0;
    let infos = 0;
    for (let r = 0; r < d.rounds!; r++) {
      for (const fd of d.fds!) {
        try {
          const f = SyncFile.getFence(arena, fd)!;
          f.put();
          ok++;
        } catch (e) {
          if (!isBadFd(e)) throw e;
          badf++;
        }
        try {
          SyncFile.info(arena, fd);
          infos++;
        } catch (e) {
          if (!isBadFd(e)) throw e;
        }
      }
    }
    arena.detach();
    parentPort!.postMessage({ type: 'done', ok, badf, infos });
  } else if (d.mode === 'own') {
    const f = Fence.fromHandle(arena, d.fence!);
    const fds: number[] = [];
    for (let i = 0; i < d.count!; i++) fds.push(SyncFile.create(arena, f, `owned-${i}`));
    f.put();
    parentPort!.postMessage({ type: 'fds', fds });
    parentPort!.on('message', () => {});
  } else if (d.mode === 'hold') {
    const f = Fence.fromHandle(arena, d.fence!);
    const fd = SyncFile.create(arena, f, 'held');
    f.lock();
    parentPort!.postMessage({ type: 'locked', fd });
    parentPort!.on('message', () => {});
  } else {
    const f = Fence.fromHandle(arena, d.fence!);
    const seen = new Set<number>();
    for (let r = 0; r < d.rounds!; r++) {
      const a = SyncFile.create(arena, f);
      const b = SyncFile.create(arena, f);
      if (a === b || seen.has(a) || seen.has(b)) throw new Error(`fd handed out twice: ${a} ${b}`);
      seen.add(a);
      seen.add(b);
      const g = SyncFile.getFence(arena, a)!;
      if (g.handle !== f.handle) throw new Error(`fd ${a} names fence ${g.handle}, expected ${f.handle}`);
      g.put();
      SyncFile.close(arena, a);
      SyncFile.close(arena, b);
      try {
        SyncFile.close(arena, a);
        throw new Error(`second close of ${a} succeeded`);
      } catch (e) {
        if (!isBadFd(e)) throw e;
      }
    }
    f.put();
    arena.detach();
    parentPort!.postMessage({ type: 'done', created: seen.size });
  }
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
}
