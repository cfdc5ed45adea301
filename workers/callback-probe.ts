/**
 * Worker fixture for the runtime, cross-thread callback and recovery suites: adds callbacks on
 * fences other threads signal, races removeCallback against signal, holds locks and references
 * until it is terminated.
 *
 * workerData: { buffer, tally?: SharedArrayBuffer (Int32 counters the callbacks bump) }.
 * Messages in (replies in quotes):
 *  - { type: 'add', handles, base } — the sender took one reference per handle for us; adds one
 *    callback per fence (bumps tally[base + i] and records our threadId in tally[base + i + n]),
 *    keeps the references tracked until 'exit' → 'added' { results: (0 signaled | 1 added)[] }.
 *  - { type: 'race', handle, flag, index } — adds a callback, sets tally[flag] = 1 and spins until
 *    tally[flag] === 2 (the signaler is ready), then removeCallback and sets tally[flag] = 3;
 *    tally[index] counts runs.
 *    → 'raced' { removed, added }.
 *  - { type: 'lock', ref } — takes a SpinLock (own block) and never lets go → 'locked'.
 *  - { type: 'fence-lock', handle } — takes a fence's lock → 'locked'.
 *  - { type: 'signal', handles } — signals each fence (no references involved) → 'signaled'.
 *  - { type: 'hold', handles } — tracks references handed over (sender took them) → 'held'.
 *  - { type: 'put-in-release', handle } — the sender handed over the last reference of a fence
 *    with ops 'test:stuck-release'; puts it, and that release (here) says 'releasing' and blocks
 *    forever (terminate me inside a release).
 *  - { type: 'put-in-callback', handle } — the sender handed over the last reference of an
 *    unsignaled fence; adds a callback that says 'in-callback' and blocks forever, then puts: the
 *    release signals with -EDEADLK and runs it (terminate me inside that signal).
 *  - { type: 'submit-loop', driver } — says 'looping', then submits operations to that driver (0:
 *    a driver it creates)
 *    forever, exporting some as fds (closed again) and cancelling or executing each (terminate me
 *    anywhere in a submission).
 *  - { type: 'oom' } — allocates until the worker's resourceLimits kill it.
 *  - { type: 'spin' } — blocks forever in a critical-section-like loop (terminate me).
 *  - { type: 'pending' } → 'pending' { callbacks, dispatching }.
 *  - { type: 'exit' } — puts the references 'add' kept, detaches → 'bye'.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { Arena, Driver, Fence, SpinLock, SyncFile, defineFenceOps, dispatcherOf, pendingCallbacks, putTracked, trackRef } from '../src/index.js';

const wd = workerData as { buffer: SharedArrayBuffer; tally?: SharedArrayBuffer };
const arena = Arena.attach(wd.buffer);
const tally = wd.tally ? new Int32Array(wd.tally) : new Int32Array(1);
const held: unknown[] = [];
const never = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread until it is terminated (bounded, so a test bug cannot hang the run). */
function stuck(type: string): void {
  parentPort!.postMessage({ type });
  Atomics.wait(never, 0, 0, 60_000);
}

defineFenceOps('test:stuck-release', {
  getDriverName: () => 'test',
  getTimelineName: () => 'stuck-release',
  release: () => stuck('releasing'),
});
const tracked: Fence[] = [];

type Msg = { type: string; handles?: number[]; handle?: number; base?: number; flag?: number; index?: number; ref?: number; driver?: number };

parentPort!.on('message', (m: Msg) => {
  try {
    switch (m.type) {
      case 'add': {
        const handles = m.handles!;
        const base = m.base ?? 0;
        const results = handles.map((h, i) => {
          // The reference stays tracked until 'exit' (or our death: then the reaper puts it).
          const f = trackRef(Fence.fromHandle(arena, h));
          tracked.push(f);
          const cb = f.addCallback(() => {
            Atomics.add(tally, base + i, 1);
            Atomics.store(tally, base + handles.length + i, threadId);
          });
          if (!cb) {
            Atomics.add(tally, base + i, 1);
            Atomics.store(tally, base + handles.length + i, threadId);
            return 0;
          }
          return 1;
        });
        parentPort!.postMessage({ type: 'added', results });
        break;
      }
      case 'race': {
        const f = trackRef(Fence.fromHandle(arena, m.handle!));
        const index = m.index!;
        const cb = f.addCallback(() => {
          Atomics.add(tally, index, 1);
        });
        Atomics.store(tally, m.flag!, 1);
        Atomics.notify(tally, m.flag!);
        while (Atomics.load(tally, m.flag!) !== 2);
        const removed = cb ? f.removeCallback(cb) : false;
        // Tell a signaler that waits for it (the "removed first" rounds) that the removal is done.
        Atomics.store(tally, m.flag!, 3);
        Atomics.notify(tally, m.flag!);
        // Not removed: it ran already or waits in our inbox, and that delivery holds a fence
        // reference of its own, so ours can go now.
        putTracked(f);
        parentPort!.postMessage({ type: 'raced', removed, added: cb !== null });
        break;
      }
      case 'lock': {
        const l = SpinLock.fromRef(arena, m.ref!);
        if (!l.lock(10_000)) throw new Error('probe could not take the lock');
        held.push(l);
        parentPort!.postMessage({ type: 'locked', slot: arena.slot, ownerDied: l.ownerDied });
        break;
      }
      case 'fence-lock': {
        const f = Fence.fromHandle(arena, m.handle!);
        if (!f.lock(10_000)) throw new Error('probe could not take the fence lock');
        held.push(f);
        parentPort!.postMessage({ type: 'locked', slot: arena.slot });
        break;
      }
      case 'signal':
        for (const h of m.handles!) Fence.fromHandle(arena, h).signal();
        parentPort!.postMessage({ type: 'signaled' });
        break;
      case 'hold':
        for (const h of m.handles!) held.push(trackRef(Fence.fromHandle(arena, h)));
        parentPort!.postMessage({ type: 'held' });
        break;
      case 'spin':
        parentPort!.postMessage({ type: 'spinning' });
        for (;;) Atomics.load(tally, 0);
      case 'put-in-release':
        Fence.fromHandle(arena, m.handle!).put();
        throw new Error('the stuck release returned');
      case 'put-in-callback': {
        const f = Fence.fromHandle(arena, m.handle!);
        f.addCallback(() => stuck('in-callback'));
        f.put();
        throw new Error('the stuck callback returned');
      }
      case 'submit-loop': {
        const d = m.driver ? Driver.fromHandle(arena, m.driver) : Driver.create(arena);
        parentPort!.postMessage({ type: 'looping' });
        for (let n = 0; ; n++) {
          const op = d.submit({ durationUs: n % 3 });
          if (n % 4 === 0) SyncFile.close(arena, op.exportFd());
          if (n % 5 === 0) d.cancel(op.handle);
          d.execute(op);
        }
      }
      case 'oom': {
        // Grow the heap until resourceLimits kill the worker (with whatever it holds).
        const hog: unknown[] = [];
        parentPort!.postMessage({ type: 'hogging' });
        for (let n = 0; ; n++) hog.push(new Array(1 << 16).fill(n));
      }
      case 'pending':
        parentPort!.postMessage({ type: 'pending', callbacks: pendingCallbacks(), dispatching: dispatcherOf(arena)?.running ?? false });
        break;
      case 'exit':
        for (const f of tracked.splice(0)) putTracked(f);
        arena.detach();
        parentPort!.postMessage({ type: 'bye' });
        parentPort!.close();
        break;
      default:
        throw new Error(`unknown message ${m.type}`);
    }
  } catch (e) {
    parentPort!.postMessage({ type: 'error', code: (e as { code?: string }).code, message: String((e as Error)?.message ?? e) });
  }
});
parentPort!.postMessage({ type: 'ready', slot: arena.slot, threadId });
