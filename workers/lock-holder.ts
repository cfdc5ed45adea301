/**
 * Worker fixture: takes and holds one lock on command, so that the main thread can meet a lock held
 * by another thread (timeouts, EPERM on a non-owner unlock).
 *
 * workerData: { buffer }. Messages in: { type: 'lock', ref, byteOffset?, kind?, timeoutMs? } (a
 * SpinLock made by create when byteOffset is absent, else SpinLock.at) → 'locked' { ownerDied }, or
 * with `timeoutMs` given → 'timedout' when it passed first; { type: 'unlock' } → 'unlocked';
 * { type: 'lockFence', handle } takes a fence's lock → 'locked'; { type: 'exit' } → detaches, 'bye'. Failures come back as { type: 'error', code, message }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, SpinLock, type LockKind } from '../src/index.js';

const arena = Arena.attach((workerData as { buffer: SharedArrayBuffer }).buffer);
let held: Pick<SpinLock, 'unlock'> | undefined;

parentPort!.on('message', (m: { type: string; ref?: number; byteOffset?: number; kind?: LockKind; handle?: number; timeoutMs?: number }) => {
  try {
    if (m.type === 'lockFence') {
      const f = Fence.fromHandle(arena, m.handle!);
      if (!f.lock(10_000)) throw new Error('lock-holder could not take the fence lock');
      held = f;
      parentPort!.postMessage({ type: 'locked', slot: arena.slot });
    } else if (m.type === 'lock') {
      const lock = m.byteOffset === undefined ? SpinLock.fromRef(arena, m.ref!) : SpinLock.at(arena, m.ref!, m.byteOffset, m.kind);
      if (!lock.lock(m.timeoutMs ?? 10_000)) {
        if (m.timeoutMs === undefined) throw new Error('lock-holder could not take the lock');
        parentPort!.postMessage({ type: 'timedout' });
        return;
      }
      held = lock;
      parentPort!.postMessage({ type: 'locked', slot: arena.slot, ownerDied: lock.ownerDied });
    } else if (m.type === 'unlock') {
      held!.unlock();
      held = undefined;
      parentPort!.postMessage({ type: 'unlocked' });
    } else if (m.type === 'exit') {
      arena.detach();
      parentPort!.postMessage({ type: 'bye' });
      parentPort!.close();
    }
  } catch (e) {
    parentPort!.postMessage({ type: 'error', code: (e as { code?: string }).code, message: String((e as Error)?.message ?? e) });
  }
});
parentPort!.postMessage({ type: 'ready', slot: arena.slot });
