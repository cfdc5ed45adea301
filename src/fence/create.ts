/**
 * Fence construction at handle level: an init checked and allocated (with its borrowed lock), the
 * arena's permanent stub fence and private stubs. Each returns a payload word index; fence.ts
 * wraps it in a view.
 */
import type { Arena } from '../arena/arena.js';
import { onCheck } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { describeValue, Errors, optionsArg, isInstance, isLiveObject } from '../errors.js';
import * as K from '../locks/layout.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { SpinLock } from '../locks/spinlock.js';
import { checkContextSeqno, contextAlloc, fenceAlloc, fenceGet, fenceInitWith, markSignaledLocked, nowNs, nsArg } from './core.js';
import { defaultOps, findOps, opsFlagsOf, stubOps, type FenceOps } from './ops.js';

const { BLOCK_HEADER_WORDS } = A;
const { FENCE } = A.BlockType;
const { F_FLAGS, FLAG_SEQNO64 } = L;

/** Block size of a plain fence: one 64-byte class, header included. */
export const FENCE_BLOCK = A.BLOCK_HEADER_BYTES + L.FENCE_BYTES;

/** What {@link Fence.create} takes (kernel dma_fence_init's arguments). */
export interface FenceInit {
  /** Ops from defineFenceOps; default software ops when absent. */
  ops?: FenceOps;
  /** Fence context, an integer in 0..2^31-1 (from {@link Fence.contextAlloc}; 0 is the stub's). */
  context: number;
  /** Sequence number on the context: an integer in 0..2^32-1, or up to 2^53-1 with `seqno64`. */
  seqno: number;
  /** Borrowed lock: a SpinLock (create/at) or the ref of a lock block / raw block (word at offset 0). Absent → inline lock. */
  lock?: number | SpinLock;
  /** A 64-bit seqno (kernel SEQNO64 flag): ordered without 32-bit wrap-around. Default false. */
  seqno64?: boolean;
}

/**
 * Checks `init` (a seqno64 that is no boolean, an unknown key beside ops/lock/seqno64: EINVAL)
 * and allocates the fence with one reference; returns its payload word index.
 * `recordAt` (0 none) is a word that receives the index in the same run as the allocation (see
 * fenceAllocWith): the driver's submit and Fence.createTracked record their fence so.
 * Throws EINVAL (context/seqno/ops/lock), EBADF (stale lock ref), ENOMEM.
 */
export function createFenceAt(arena: Arena, init: FenceInit, recordAt: number): number {
  // The common init, { context, seqno }: default ops, inline lock, 32-bit seqno. Everything else
  // (and a non-object) takes createFenceSlow, out of line: this function is inlined into every
  // create, and what it holds is spent from the caller's inlining budget (test/inline-budget.test.ts).
  // No key count here: the cheapest (a for-in) cost create+signal+put 2-9% (it also keeps V8 from
  // eliding the init literal), so an unknown key beside exactly context and seqno is not seen here.
  let slow: boolean;
  try {
    slow = init === null || typeof init !== 'object' || init.ops !== undefined || init.lock !== undefined || init.seqno64 !== undefined;
  } catch (e) {
    // A revoked Proxy: its first read is the engine's TypeError (out of line, see createRefusal).
    throw createRefusal(init, e);
  }
  if (slow) return createFenceSlow(arena, init, recordAt);
  const context = init.context;
  const seqno = init.seqno;
  checkContextSeqno(context, seqno, false);
  return fenceAllocWith(arena, recordAt, defaultOps.id, context, seqno, 0, 0, 0);
}

/**
 * What createFenceAt throws for `e`, thrown by its first read of `init`: EINVAL for a revoked Proxy
 * (the fast path reads init with no test of its own: a test there would cost every create), `e`
 * itself otherwise (a live Proxy's trap: the caller's own code). Nothing was allocated yet.
 * Threads: any. Never throws.
 */
function createRefusal(init: unknown, e: unknown): unknown {
  return init === null || typeof init !== 'object' || isLiveObject(init) ? e : Errors.invalid(`Fence.create needs { context, seqno }, got ${describeValue(init)}`);
}

/** The keys a {@link FenceInit} may have: another one is EINVAL (a misspelled `seqNo64` would be a silent default). */
const INIT_KEYS: readonly (keyof FenceInit)[] = ['context', 'seqno', 'ops', 'lock', 'seqno64'];

/**
 * Refuses a key of `init` that no FenceInit has (EINVAL naming the known ones), for the entries off
 * the hot path (createFenceSlow, Fence.createTracked). Threads: any. Returns nothing.
 */
export function checkInitKeys(init: FenceInit, where: string): void {
  optionsArg(init, where, INIT_KEYS);
}

/** {@link createFenceAt} of an init with ops, a borrowed lock or a seqno64 field (or not an object). Same contract. */
function createFenceSlow(arena: Arena, init: FenceInit, recordAt: number): number {
  if (init === null || typeof init !== 'object') throw Errors.invalid(`Fence.create needs { context, seqno }, got ${describeValue(init)}`);
  checkInitKeys(init, 'Fence.create');
  if (init.seqno64 !== undefined && typeof init.seqno64 !== 'boolean') throw Errors.invalid(`Fence.create: seqno64 must be a boolean, got ${describeValue(init.seqno64)}`);
  const seqno64 = init.seqno64 === true;
  checkContextSeqno(init.context, init.seqno, seqno64);
  // Only an absent ops means the default: `ops: null` is a caller's mistake, refused like any other.
  const ops = init.ops === undefined ? defaultOps : init.ops;
  // The default ops are registered in every thread as ops.ts loads: no lookup for them.
  if (ops !== defaultOps && (ops === null || typeof ops !== 'object' || !isLiveObject(ops) || findOps(ops.id) !== ops)) throw Errors.invalid('ops must come from defineFenceOps in this thread');
  let lockIdx = 0;
  let lenderHw = 0;
  if (init.lock !== undefined) {
    const sl = borrowedLock(arena, init.lock);
    lockIdx = sl.index;
    lenderHw = arena.resolve(sl.ref, -1, 'lock');
  }
  const flags = (seqno64 ? FLAG_SEQNO64 : 0) | (ops === defaultOps ? 0 : opsFlagsOf(ops.id));
  return fenceAllocWith(arena, recordAt, ops.id, init.context, init.seqno, flags, lockIdx, lenderHw);
}

/**
 * Allocates the fence and initialises it with InitArgs' fields as arguments (`flags`: see
 * fenceInitWith), not an InitArgs object: V8 inlines only so much into one function, and an object
 * handed to a call it did not inline is allocated, one more per fence (26 against 15 scavenges per
 * 2 M create+signal+put). `recordAt` (0 none) receives the payload word index in the allocation's
 * run, so that an owner recording the fence there finds it if this thread is terminated.
 */
function fenceAllocWith(arena: Arena, recordAt: number, opsId: number, context: number, seqno: number, flags: number, lockIdx: number, lenderHw: number): number {
  const fw = arena.allocBlock(FENCE_BLOCK, FENCE) + BLOCK_HEADER_WORDS;
  if (recordAt) {
    // In the allocation's run: the record names the block, and its reaper reads these flags as
    // "not initialised yet" until fenceInitWith writes them (src/fence/ledger.ts reapCreating).
    arena.i32[recordAt] = fw;
    arena.i32[fw + F_FLAGS] = 0;
  }
  fenceInitWith(arena, fw, opsId, context, seqno, flags, lockIdx, lenderHw);
  return fw;
}

/** The lock a fence borrows: a SpinLock of this arena, or a lock/raw block ref. Throws EINVAL, EBADF. */
function borrowedLock(arena: Arena, lock: number | SpinLock): SpinLock {
  let sl: SpinLock | undefined;
  if (isInstance(lock, SpinLock)) {
    if (lock.arena.buffer !== arena.buffer) throw Errors.invalid('borrowed lock belongs to another arena');
    sl = lock;
  } else {
    sl = typeof lock === 'number' ? lockFromRef(arena, lock) : undefined;
    if (!sl) throw Errors.invalid('lock must be a SpinLock or a lock/raw block ref');
  }
  // The fence takes its lock with the arena's algorithm: one word, one algorithm, or the
  // two would corrupt each other's bits (a ticket word taken by a futex CAS, and so on).
  if (sl.kindId !== arena.lockKindId)
    throw Errors.invalid(`borrowed lock is a ${sl.kind} lock; fences of this arena lock with ${arena.lockKind}`);
  return sl;
}

/** A borrowed lock given as a number: a LOCK block, or word 0 of a raw/operation block. */
function lockFromRef(arena: Arena, ref: number): SpinLock {
  const hw = arena.resolve(ref, -1, 'lock');
  const type = (arena.i32[hw + A.B_TAG] >>> A.TAG_TYPE_SHIFT) & A.TAG_TYPE_MASK;
  return type === A.BlockType.LOCK ? SpinLock.fromRef(arena, ref) : SpinLock.at(arena, ref, 0);
}

/**
 * The arena's permanent signaled stub fence (context 0, seqno 0), with a new reference; returns
 * its payload word index. Threads: any; the first call in the arena creates it (under a spin word).
 */
export function stubFenceAt(arena: Arena): number {
  const i32 = arena.i32;
  let fw = Atomics.load(i32, L.H_STUB);
  if (fw === 0) {
    // A robust lock word, not a bare spin flag: a thread terminated while creating the stub
    // would otherwise leave it taken and every later caller spinning forever.
    acquireWord(arena, L.H_STUB_LOCK, K.LK_FUTEX);
    try {
      fw = Atomics.load(i32, L.H_STUB);
      if (fw === 0) {
        fw = fenceAlloc(arena, FENCE_BLOCK, { opsId: stubOps.id, context: 0, seqno: 0, seqno64: false, lockIdx: 0, lenderHw: 0 });
        markSignaledLocked(arena, fw, nowNs());
        Atomics.store(i32, L.H_STUB, fw);
      }
    } finally {
      releaseWord(arena, L.H_STUB_LOCK, K.LK_FUTEX);
    }
  }
  fenceGet(i32, fw);
  return fw;
}

/**
 * A new signaled fence on its own context (kernel dma_fence_allocate_private_stub), signaled at
 * `timestamp` (default now); returns its payload word index. Throws EINVAL (timestamp), ENOMEM.
 */
export function privateStubAt(arena: Arena, timestamp?: bigint): number {
  if (timestamp !== undefined) nsArg(timestamp, 'privateStub timestamp');
  const context = contextAlloc(arena, 1);
  const fw = fenceAlloc(arena, FENCE_BLOCK, { opsId: stubOps.id, context, seqno: 0, seqno64: false, lockIdx: 0, lenderHw: 0 });
  markSignaledLocked(arena, fw, timestamp ?? nowNs(), timestamp === undefined);
  return fw;
}

/** Check hook: the stub fence lives as long as the arena. */
onCheck((arena) => {
  const stub = arena.i32[L.H_STUB];
  return { permanent: stub ? [stub] : [] };
});
