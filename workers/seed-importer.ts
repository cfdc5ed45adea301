/**
 * Worker fixture: the importer of the seed scenario. It holds a reference to a fence exported by
 * another thread and, on command, takes and drops the fence's lock (the lock the exporter's
 * operation lent it, or the fence's inline lock). Outcomes are reported, never thrown: a timeout,
 * an EPERM, a UseAfterFreeError with its report.
 *
 * workerData: { buffer }. Commands: { type: 'import', handle } (the sender took a reference for
 * us) → 'imported'; { type: 'lock', timeoutMs } → 'lock-result' { ok, acquired }; { type: 'unlock' }
 * → 'unlock-result'; { type: 'status' } → 'status-result' { status }; { type: 'put' } →
 * 'put-result'; { type: 'exit', detach } → 'bye' (detach false leaves the slot for the parent to reap).
 * Every '-result' carries { ok: false, name, code, message, report? } when the call threw.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, FenceError, UseAfterFreeError } from '../src/index.js';

const arena = Arena.attach((workerData as { buffer: SharedArrayBuffer }).buffer);
let fence: Fence | undefined;

function failure(e: unknown): Record<string, unknown> {
  return {
    ok: false,
    name: (e as Error)?.name,
    code: e instanceof FenceError ? e.code : undefined,
    message: String((e as Error)?.message ?? e),
    report: e instanceof UseAfterFreeError ? { ...e.report } : undefined,
  };
}

function run(type: string, fn: () => Record<string, unknown>): void {
  let reply: Record<string, unknown>;
  try {
    reply = { ok: true, ...fn() };
  } catch (e) {
    reply = failure(e);
  }
  parentPort!.postMessage({ type: `${type}-result`, uafCount: arena.uafCount, ...reply });
}

parentPort!.on('message', (m: { type: string; handle?: number; timeoutMs?: number; detach?: boolean }) => {
  switch (m.type) {
    case 'import':
      fence = Fence.fromHandle(arena, m.handle!);
      parentPort!.postMessage({ type: 'imported', usesInlineLock: fence.usesInlineLock, slot: arena.slot });
      break;
    case 'lock':
      run('lock', () => ({ acquired: fence!.lock(m.timeoutMs) }));
      break;
    case 'unlock':
      run('unlock', () => {
        fence!.unlock();
        return {};
      });
      break;
    case 'status':
      run('status', () => ({ status: fence!.status() }));
      break;
    case 'put':
      run('put', () => {
        fence!.put();
        fence = undefined;
        return {};
      });
      break;
    case 'exit':
      if (m.detach !== false) arena.detach();
      parentPort!.postMessage({ type: 'bye', slot: arena.slot });
      parentPort!.close();
      break;
  }
});
parentPort!.postMessage({ type: 'ready', slot: arena.slot });
