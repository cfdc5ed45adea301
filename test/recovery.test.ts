/**
 * Dead-worker recovery (docs/architecture.md, "Kill safety"): a worker that exits for any reason — terminate() in the
 * middle of a critical section, out of memory — is reaped by the watching thread: its locks are
 * released and marked owner-died, its fds closed, its unsignaled exported fences signaled with
 * -ENODEV, its operations and tracked references freed. Nobody else hangs; arena.check() is clean.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Arena, Driver, Errno, Fence, FenceError, SpinLock, SyncFile, defineFenceOps, drainInbox } from '../src/index.js';
import * as A from '../src/arena/layout.js';
import * as DR from '../src/driver/layout.js';
import * as FL from '../src/fence/layout.js';

const L = { ...A, ...FL, ...DR };
import { C, EX_CB_RAN, EX_DONE, EX_PUBLISHED, RING_SLOTS, SF_CARRIER, S_OWNER, S_STATE, isTaken, slotF64, slotWord } from '../workers/board.js';
import type { Crew } from '../workers/crew.js';
import { seededInt, testSeed } from './fixtures/seeded.js';
import { expectClean, fixture, TestWorker } from './support/core.js';
import { startScenario, stopScenario, type Scenario } from './support/threads.js';

const workers: TestWorker[] = [];
let scenario: Scenario | undefined;
function probe(arena: Arena): TestWorker {
  const w = new TestWorker('callback-probe', { buffer: arena.buffer });
  workers.push(w);
  arena.watch(w.worker);
  return w;
}
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.worker.terminate()));
  await stopScenario(scenario);
  scenario = undefined;
});

/** Same name as the probe's ops, whose release blocks there; here it counts its calls. */
let stuckReleases = 0;
const stuckOps = defineFenceOps('test:stuck-release', {
  getDriverName: () => 'test',
  getTimelineName: () => 'stuck-release',
  release: () => {
    stuckReleases++;
  },
});

/**
 * Ring slots of exporter `index` taken by an importer that has imported what the slot carries: a
 * sync-file fd, which the importer closes right after its import (only it closes one while the
 * exporter lives, and fds are never reused: a closed one stays EBADF), or a hand-over token, whose
 * transit record the receiver frees once it holds the reference (a token's block then resolves
 * EBADF; only the receive frees it while the exporter lives). A taken slot alone does not say the
 * importer got that far: a token is no fd, so SyncFile.info of one is EBADF from the start.
 */
function importedFrom(crew: Crew, index: number, carrier: 'fd' | 'token'): number {
  let n = 0;
  for (let i = 0; i < RING_SLOTS; i++) {
    if (!isTaken(crew.count(slotWord(i, S_STATE))) || crew.count(slotWord(i, S_OWNER)) !== index) continue;
    const handle = crew.board.f64[slotF64(i, SF_CARRIER)];
    try {
      if (carrier === 'fd') SyncFile.info(crew.arena, handle);
      else crew.arena.resolve(handle, A.BlockType.TRANSIT, 'transit record');
    } catch (e) {
      if (!(e instanceof FenceError && e.code === 'EBADF')) throw e;
      n++;
    }
  }
  return n;
}

function exitOf(w: Worker): Promise<number> {
  return new Promise((r) => w.once('exit', r));
}

describe('dead-worker recovery', () => {
  it('terminate() mid-critical-section: the thread waiting on the lock gets it, told the owner died', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const lock = SpinLock.create(arena);
    const a = probe(arena);
    const b = probe(arena);
    await Promise.all([a.next('ready'), b.next('ready')]);
    await a.ask({ type: 'lock', ref: lock.ref }, 'locked');
    await a.ask({ type: 'spin' }, 'spinning');
    b.post({ type: 'lock', ref: lock.ref }); // blocks in B until A is reaped
    // Killed only once B is blocked on the lock (its thread slot says so), not after a guessed sleep.
    for (const deadline = Date.now() + 60_000; !arena.describe().threads.some((t) => t.acquiring); ) {
      if (Date.now() > deadline) throw new Error('B never blocked on the lock');
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(b.messages.some((m) => m.type === 'locked')).toBe(false);
    const gone = exitOf(a.worker);
    await a.worker.terminate();
    await gone;
    const got = await b.next('locked');
    expect(got.ownerDied).toBe(true);
    // B still holds it (detach would refuse with EBUSY): it dies too, and the lock comes back here.
    const gone2 = exitOf(b.worker);
    await b.worker.terminate();
    await gone2;
    expect(lock.lock(2000)).toBe(true);
    expect(lock.ownerDied).toBe(true);
    lock.unlock();
    lock.free();
    expectClean(arena);
  });

  it('a fence lock held by a terminated worker: signal() from another thread completes', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const w = probe(arena);
    await w.next('ready');
    await w.ask({ type: 'fence-lock', handle: f.handle }, 'locked');
    expect(f.lock(20)).toBe(false);
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    expect(f.lock(2000)).toBe(true);
    f.unlock();
    f.signal();
    expect(f.status()).toBe(1);
    f.put();
    expectClean(arena);
  });

  it('out of memory (resourceLimits) while holding a lock and references: reaped like any death', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const lock = SpinLock.create(arena);
    const ctx = Fence.contextAlloc(arena);
    const fences = Array.from({ length: 8 }, (_, i) => Fence.create(arena, { context: ctx, seqno: i + 1 }));
    const w = new Worker(fixture('callback-probe'), {
      workerData: { buffer: arena.buffer },
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    arena.watch(w);
    const errors: Error[] = [];
    w.on('error', (e) => errors.push(e));
    const gone = exitOf(w);
    const next = (type: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timeout waiting for ${type}`)), 60_000);
        const on = (m: Record<string, unknown>) => {
          if (m.type !== type) return;
          clearTimeout(t);
          w.off('message', on);
          resolve(m);
        };
        w.on('message', on);
      });
    await next('ready');
    w.postMessage({ type: 'lock', ref: lock.ref });
    await next('locked');
    for (const f of fences) f.get();
    w.postMessage({ type: 'hold', handles: fences.map((f) => f.handle) });
    await next('held');
    w.postMessage({ type: 'oom' });
    const code = await Promise.race([gone, new Promise<string>((r) => setTimeout(() => r('timeout'), 60_000))]);
    expect(code).not.toBe('timeout');
    expect(errors.some((e) => (e as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY')).toBe(true);
    expect(lock.lock(2000)).toBe(true);
    expect(lock.ownerDied).toBe(true);
    lock.unlock();
    lock.free();
    for (const f of fences) expect(f.refcount).toBe(1);
    for (const f of fences) f.put();
    expectClean(arena);
  });

  it.each(['fd', 'token'] as const)('an exporter terminated with operations in flight (%s carrier): its fences get -ENODEV, its fds close or its shares are withdrawn, nothing leaks', async (carrier) => {
    const K = 40;
    // Exporter 0 hands off all its operations, then executes the first for 30 s: it is killed first.
    const s = (scenario = startScenario({
      n: 2, m: 2, k: K, seed: testSeed('dead-exporter'), carrier,
      engine: { commandRate: 0, removeRate: 0.2, holdMaxMs: 15, workUs: 100, jitter: 1, awaitTake: false, waitTimeoutMs: 30_000 },
      exporter: (e) => (e === 0 ? { depth: K, workUs: 30_000_000, jitter: 0 } : {}),
    }));
    const { crew } = s;
    const [dead, live] = s.exporters;
    // Both importers end up waiting on one of its fences each (nothing else signals them). Killed
    // once both imported theirs (not merely took the slot): both then see -ENODEV, by construction.
    await crew.until('exporter 1 to finish and both importers to import a fence of exporter 0', () =>
      crew.word(EX_PUBLISHED, dead.index) === K && crew.word(EX_DONE, live.index) === K && importedFrom(crew, dead.index, carrier) === 2, 120_000);
    await crew.kill(dead);
    await crew.settled();
    expect(crew.errors).toEqual([]);
    const gone = s.drivers[0].counters;
    expect(gone.submitted).toBe(K);
    expect(gone.aborted).toBe(K);
    expect(gone.completed + gone.canceled + gone.deleted).toBe(0);
    expect(gone.live).toBe(0);
    expect(gone.freed).toBe(K);
    expect(s.drivers[1].counters.completed).toBe(K);
    expect(crew.word(EX_CB_RAN, dead.index)).toBe(0); // its owner died: its callbacks are dropped, never run elsewhere
    expect(crew.word(EX_CB_RAN, live.index)).toBe(K);
    // Each of its fds (tokens) was either imported (received) before the death (the fence then ended
    // -ENODEV) or closed (withdrawn) by the reaper.
    expect(crew.count(C.SEEN_NODEV) + crew.count(C.BAD_FD)).toBe(K);
    expect(crew.count(C.SEEN_NODEV)).toBeGreaterThanOrEqual(2);
    expect(crew.count(C.CONSUMED)).toBe(2 * K);
    expect(crew.count(C.SIGNALS)).toBe(crew.count(C.FENCES));
    for (const c of [C.STATUS_MISMATCH, C.HANGS, C.CB_DOUBLE, C.DOUBLE_SIGNALS, C.ERRORS]) expect(crew.count(c), `counter ${c}`).toBe(0);
    expect(SyncFile.openCount(s.arena)).toBe(0);
    crew.sweep();
    for (const d of s.drivers) d.destroy();
    expectClean(s.arena);
  });

  // Every reference hand-off this test kills into is a single run of plain writes and Atomics ops
  // (importFd, putTracked, runRemote, SyncFile.close, the ring's hand-back, a command posted to the
  // driver's ring), and a release the victim had begun is finished by its reaper (release
  // records): no retry. The board's recovery hands back the slots the victims had taken. Commands
  // go through the ring only: an importer ending an operation in place would be the signaler, and
  // kills inside signal() are the subject of test/signal-kill.test.ts, not of this one.
  it.each(['fd', 'token'] as const)('importers terminated while holding fences, callbacks and fence waits (%s carrier): the exporters finish, nothing leaks', async (carrier) => {
    const K = 60;
    const s = (scenario = startScenario({
      n: 2, m: 3, k: K, seed: testSeed('dead-importers'), carrier,
      engine: { commandRate: 0.2, commandVia: 'ring', removeRate: 0, holdMaxMs: 30, workUs: 1050, jitter: 0.9 },
    }));
    const { crew } = s;
    await crew.until('the importers to be busy', () => crew.count(C.CONSUMED) >= 3);
    await Promise.all(s.importers.slice(0, 2).map((m) => crew.kill(m)));
    await crew.settled();
    expect(crew.errors).toEqual([]);
    for (const d of s.drivers) {
      const c = d.counters;
      expect(c.completed + c.canceled + c.deleted).toBe(K);
      expect(c.live).toBe(0);
    }
    // Every exporter callback still ran exactly once, in its exporter.
    for (const e of s.exporters) expect(crew.word(EX_CB_RAN, e.index)).toBe(K);
    for (const c of [C.STATUS_MISMATCH, C.CB_DOUBLE, C.DOUBLE_SIGNALS, C.ME_VIOLATIONS, C.ERRORS]) expect(crew.count(c), `counter ${c}`).toBe(0);
    expect(SyncFile.openCount(s.arena)).toBe(0);
    crew.sweep();
    for (const d of s.drivers) d.destroy();
    expectClean(s.arena);
  });
});

describe('a worker terminated inside the release of a fence whose last reference it dropped', () => {
  it('inside ops.release: the reaper frees the block and does not call release again', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { ops: stuckOps, context: Fence.contextAlloc(arena), seqno: 1 });
    f.signal();
    const w = probe(arena);
    await w.next('ready');
    stuckReleases = 0;
    w.post({ type: 'put-in-release', handle: f.handle }); // our reference goes with it
    await w.next('releasing');
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    expect(stuckReleases).toBe(0);
    expect(arena.stats().live.fence ?? 0).toBe(0);
    expectClean(arena);
  });

  it('inside the -EDEADLK signal of the release: remote callbacks still run once, then the fence is freed', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const seen: number[] = [];
    expect(f.addCallback((x) => seen.push(x.status()))).not.toBeNull();
    const w = probe(arena);
    await w.next('ready');
    w.post({ type: 'put-in-callback', handle: f.handle }); // the last reference: unsignaled, with callbacks
    await w.next('in-callback');
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    drainInbox(arena); // our callback was delivered to this thread's inbox, with a reference
    expect(seen).toEqual([Errno.EDEADLK]);
    expectClean(arena);
  });

  it('between the drop and the release (state forged in its slot): the reaper runs the release, once', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { ops: stuckOps, context: Fence.contextAlloc(arena), seqno: 1 });
    f.signal();
    const w = probe(arena);
    const slot = (await w.next('ready')).slot as number;
    // What a thread terminated right after its last put leaves: refcount 0, the record, no free.
    const b = arena.slotWord(slot);
    const i32 = arena.i32;
    i32[b + L.T_RELEASE] = f.fw;
    i32[b + L.T_RELEASE + 1] = (i32[f.fw - L.BLOCK_HEADER_WORDS + L.B_GEN] & L.GEN_MASK) | L.REL_DROPPED;
    i32[b + L.T_RELEASE_DEPTH] = 1;
    Atomics.store(i32, f.fw + L.F_REFCOUNT, 0);
    stuckReleases = 0;
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    expect(stuckReleases).toBe(1); // ops.release ran here, in the reaping thread
    expectClean(arena);
  });

  it('before the drop (an intent record, forged): the reaper leaves the fence to its holders', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
    const w = probe(arena);
    const slot = (await w.next('ready')).slot as number;
    // terminate() landed at the Atomics.sub: the record was pushed, the reference not dropped.
    const b = arena.slotWord(slot);
    const i32 = arena.i32;
    i32[b + L.T_RELEASE] = f.fw;
    i32[b + L.T_RELEASE + 1] = i32[f.fw - L.BLOCK_HEADER_WORDS + L.B_GEN] & L.GEN_MASK;
    i32[b + L.T_RELEASE_DEPTH] = 1;
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    expect(f.refcount).toBe(1);
    f.put();
    expectClean(arena);
  });
});

describe('a worker terminated between claiming a driver operation and freeing it', () => {
  it.each([['claimed'], ['claimed and signaled']])('%s (state forged in its slot): the reaper ends it exactly once', async (stage) => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const op = d.submit();
    const f = op.fence.get();
    const w = probe(arena);
    const slot = (await w.next('ready')).slot as number;
    // What finishOp leaves right after winning its CAS (and, later, after signaling).
    const i32 = arena.i32;
    const b = arena.slotWord(slot);
    const finishing = (op.gen << L.OPS_GEN_SHIFT) | L.OPS_FINISHING;
    Atomics.store(i32, op.ow + L.OP_STATE, finishing);
    i32[op.ow + L.OP_RESULT] = Errno.ECANCELED;
    const rec = b + L.T_FINISH; // the outermost end record
    i32[rec + L.FIN_STATE] = finishing;
    i32[rec + L.FIN_COUNTER] = L.DRV_CANCELED;
    i32[rec + L.FIN_OP] = op.ow;
    i32[b + L.T_FINISH_DEPTH] = 1;
    if (stage !== 'claimed') {
      f.setError(Errno.ECANCELED);
      f.signal();
    }
    expect(d.cancel(op.handle)).toBe(false); // claimed: nobody else may end it
    const gone = exitOf(w.worker);
    await w.worker.terminate();
    await gone;
    expect(f.status()).toBe(Errno.ECANCELED);
    expect(d.counters).toMatchObject({ submitted: 1, completed: 0, canceled: 1, deleted: 0, freed: 1, live: 0 });
    expect(op.live).toBe(false);
    expect(d.execute(op)).toBe(Errno.ECANCELED); // the submitter learns it ended (and forgets it)
    expect(f.refcount).toBe(1); // the operation's reference went, ours is left
    f.put();
    d.destroy();
    expectClean(arena);
  });
});

/** Twenty worker boots and kills: 57 s with two busy loops on both cores, so each test gets several times that. */
const KILL_LOOP_MS = 300_000;

describe('an exporter terminated at random moments of a submit / export / execute loop', () => {
  it('every operation it submitted ends exactly once, its fds close, nothing leaks (20 kills)', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const d = Driver.create(arena);
    const rand = seededInt(testSeed('exporter-loop'));
    for (let round = 0; round < 20; round++) {
      const w = probe(arena);
      await w.next('ready');
      await w.ask({ type: 'submit-loop', driver: d.handle }, 'looping');
      await new Promise((r) => setTimeout(r, 2 + rand(13)));
      const gone = exitOf(w.worker);
      await w.worker.terminate();
      await gone;
      const c = d.counters;
      expect(c.live).toBe(0);
      expect(c.completed + c.canceled + c.aborted).toBe(c.submitted);
      expect(c.freed).toBe(c.submitted);
      expect(SyncFile.openCount(arena)).toBe(0);
      expect(arena.check().leaks.filter((l) => l.allocatedBy !== arena.slot)).toEqual([]); // nothing of the dead
    }
    d.destroy();
    expectClean(arena);
  }, KILL_LOOP_MS);

  it('with a driver it created itself: the reaper also destroys the driver (20 kills)', async () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    const rand = seededInt(testSeed('exporter-own-driver'));
    for (let round = 0; round < 20; round++) {
      const w = probe(arena);
      await w.next('ready');
      await w.ask({ type: 'submit-loop', driver: 0 }, 'looping');
      await new Promise((r) => setTimeout(r, 2 + rand(11)));
      const gone = exitOf(w.worker);
      await w.worker.terminate();
      await gone;
      expect(SyncFile.openCount(arena)).toBe(0);
      expectClean(arena);
    }
  }, KILL_LOOP_MS);
});
