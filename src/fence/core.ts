/**
 * Handle-level fence functions: everything the Fence class and the containers build on. `fw` is
 * the word index of a fence payload (header at fw - 2). No JS objects are allocated on the hot
 * paths (init, signal, get; the put is release.ts, the fence lock lock.ts).
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as L from './layout.js';
import { Errors, MAX_ERRNO, describeValue } from '../errors.js';
import { opsFlagsOf } from './ops.js';
import './inlinereap.js'; // registers the reap of a dead thread's fence inline locks
import { FH } from './hot.js';
import './hot.js'; // its load-time check of FH (tsc drops the import above: const enum members only)
import { entryWord, ownRing, publishEntry, traceEvent } from '../trace/ring.js';

const { F_FLAGS, F_LOCK, F_LENDER, F_LENDER_GEN, F_OPS, F_REFCOUNT, F_ERROR, F_CONTEXT, F_SEQNO_LO, F_SEQNO_HI, F_TIMESTAMP, FLAG_INLINE_LOCK, FLAG_SEQNO64, FLAG_SIGNALED, FLAG_TIMESTAMP, FLAG_WAITERS } = L;
const { BLOCK_HEADER_WORDS, GEN_MASK } = A;

/**
 * Node's `process.hrtime.bigint`, looked up once: `process` is a dictionary-mode object, so
 * `process.hrtime` is a hash lookup on every call, which optimized code cannot fold (measured in
 * a loop: ~80 ns a read through `process`, ~40 looked up once).
 */
const hrtimeBigInt = process.hrtime.bigint;

/** Monotonic nanoseconds: CLOCK_MONOTONIC, the same clock in every thread of the process. */
export function nowNs(): bigint {
  return hrtimeBigInt();
}

export interface InitArgs {
  opsId: number;
  context: number;
  seqno: number;
  seqno64: boolean;
  /** Borrowed lock word index, or 0 for the inline lock. */
  lockIdx: number;
  /** Header word of the block holding the borrowed lock (0 inline). */
  lenderHw: number;
}

/**
 * Reserves `n` consecutive fence contexts (kernel dma_fence_context_alloc); returns the first.
 * The first ever is 1: context 0 belongs to the stub fence. Threads: any. Throws EINVAL for a bad
 * count or when the 31-bit context space is exhausted.
 */
export function contextAlloc(arena: Arena, n = 1): number {
  if (!Number.isInteger(n) || n < 1 || n > 1 << 20) throw Errors.invalid(`context count must be in 1..${1 << 20}, got ${describeValue(n)}`);
  const first = Atomics.add(arena.i32, L.H_CONTEXT, n) + 1;
  if (first + n > 0x7fffffff) throw Errors.invalid('fence contexts exhausted');
  return first;
}

/** Validates context/seqno the way every fence constructor needs. Throws EINVAL. */
export function checkContextSeqno(context: number, seqno: number, seqno64: boolean): void {
  // The messages are built out of line (badContextSeqno): Fence.create inlines this check.
  if (!Number.isInteger(context) || context < 0 || context > 0x7fffffff || !Number.isInteger(seqno) || seqno < 0 || seqno > (seqno64 ? Number.MAX_SAFE_INTEGER : 0xffffffff))
    throw badContextSeqno(context, seqno, seqno64);
}

/** {@link checkContextSeqno}'s error for the first of `context` and `seqno` that is out of range. */
function badContextSeqno(context: number, seqno: number, seqno64: boolean): Error {
  if (!Number.isInteger(context) || context < 0 || context > 0x7fffffff)
    return Errors.invalid(`fence context must be an integer in 0..2^31-1, got ${describeValue(context)}`);
  const max = seqno64 ? Number.MAX_SAFE_INTEGER : 0xffffffff;
  return Errors.invalid(`fence seqno must be an integer in 0..${max}${seqno64 ? '' : ' (pass seqno64 for 64-bit)'}, got ${describeValue(seqno)}`);
}

/** Largest time in ns a fence word holds (a signed 64-bit word: timestamps, deadlines). */
export const MAX_NS = 2n ** 63n - 1n;

/** `ns` for a 64-bit time word (every timestamp and deadline argument): a bigint in 0..2^63-1, else EINVAL naming `where`. */
export function nsArg(ns: unknown, where: string): bigint {
  if (typeof ns !== 'bigint' || ns < 0n || ns > MAX_NS) throw Errors.invalid(`${where} needs a bigint in 0..2^63-1 (ns), got ${describeValue(ns)}`);
  return ns;
}

/** Allocates and initialises a fence block of `blockBytes` (≥ 64); returns its payload word index. */
export function fenceAlloc(arena: Arena, blockBytes: number, a: InitArgs): number {
  const fw = arena.allocBlock(blockBytes, A.BlockType.FENCE) + BLOCK_HEADER_WORDS;
  fenceInit(arena, fw, a);
  return fw;
}

/**
 * Allocates a fence block of `blockBytes` and leaves it uninitialised (flags 0: not INITIALIZED,
 * no inline lock for the reaper's walk to look at), for constructors that split allocation from
 * initialisation (kernel dma_fence_array_alloc, dma_fence_chain_alloc). Returns the payload word.
 * The payload is zeroed: the block may have been a fence with callbacks or an sw_sync point, and
 * {@link Arena.check} walks every fence block, so their words left in it would be reported as broken links.
 */
export function fenceReserve(arena: Arena, blockBytes: number): number {
  const fw = arena.allocBlock(blockBytes, A.BlockType.FENCE) + BLOCK_HEADER_WORDS;
  arena.i32.fill(0, fw, fw + ((blockBytes - A.BLOCK_HEADER_BYTES) >>> 2));
  return fw;
}

/** Initialises the fence at payload word `fw` with one reference (kernel dma_fence_init); allocates nothing. */
export function fenceInit(arena: Arena, fw: number, a: InitArgs): void {
  fenceInitWith(arena, fw, a.opsId, a.context, a.seqno, (a.seqno64 ? FLAG_SEQNO64 : 0) | opsFlagsOf(a.opsId), a.lockIdx, a.lenderHw);
}

/**
 * {@link fenceInit} with InitArgs' fields as arguments (Fence.create's path: see createFenceAt):
 * `flags` holds SEQNO64 and the ops' FLAG_OPS_* bits; INITIALIZED and INLINE_LOCK are added here.
 */
export function fenceInitWith(arena: Arena, fw: number, opsId: number, context: number, seqno: number, flags: number, lockIdx: number, lenderHw: number): void {
  // Layout constants as FH literals (see hot.ts): Fence.create inlines this function.
  const i32 = arena.i32;
  i32[fw + FH.F_LOCK] = lockIdx;
  i32[fw + FH.F_LENDER] = lenderHw;
  i32[fw + FH.F_LENDER_GEN] = lenderHw ? arena.generationAt(lenderHw) : 0;
  i32[fw + FH.F_OPS] = opsId;
  i32[fw + FH.F_CB_HEAD] = 0;
  i32[fw + FH.F_CB_TAIL] = 0;
  i32[fw + FH.F_REFCOUNT] = 1;
  i32[fw + FH.F_ERROR] = 0;
  i32[fw + FH.F_CONTEXT] = context;
  i32[fw + FH.F_SEQNO_LO] = seqno | 0;
  i32[fw + FH.F_SEQNO_HI] = Math.floor(seqno / 0x100000000);
  // The thread responsible for signaling it (see signaler.ts): the creator, in the timestamp
  // words, which mean nothing until the signal overwrites them.
  i32[fw + FH.F_TIMESTAMP] = arena.me; // slot + 1
  i32[fw + (FH.F_TIMESTAMP + 1)] = i32[arena.slotBase + FH.T_SERIAL];
  i32[fw + FH.F_FLAGS] = FH.FLAG_INITIALIZED | (lockIdx === 0 ? FH.FLAG_INLINE_LOCK : 0) | flags;
  // The hot paths' tracepoints test the flags word inline, not through ring.ts's tracing(): an
  // imported function costs a binding load, a hole check and a target check at every call site.
  if (i32[FH.TH_FLAGS] & FH.TC_FENCE) traceInit(arena, fw);
}

/**
 * The dma_fence_init event of the fence just initialised at `fw`, written straight into the ring
 * (see traceSignaled): one call from fenceInitWith's tracepoint, stamped with a clock read.
 */
function traceInit(arena: Arena, fw: number): void {
  const rw = ownRing(arena);
  if (rw === 0) return;
  const i32 = arena.i32;
  const ev = entryWord(i32, rw);
  arena.i64[ev >>> 1] = hrtimeBigInt();
  i32[ev + FH.EV_KIND] = FH.EV_FENCE_INIT | (i32[fw + FH.F_FLAGS] & FH.FLAG_INLINE_LOCK ? FH.INIT_INLINE_LOCK_BITS : 0) | ((i32[fw + FH.F_SEQNO_HI] & 0xffff) << FH.INIT_SEQNO_HI_BITS_SHIFT);
  fenceEventArgs(i32, ev, fw);
  i32[ev + FH.EV_E] = i32[fw + FH.F_OPS];
  publishEntry(i32, rw);
}

/** Arguments A–D of a fence event at entry `ev`: the fence's payload word, generation, context and seqno (low 32 bits). */
function fenceEventArgs(i32: Int32Array, ev: number, fw: number): void {
  i32[ev + FH.EV_A] = fw;
  i32[ev + FH.EV_B] = i32[fw + FH.PAYLOAD_B_GEN] & GEN_MASK;
  i32[ev + FH.EV_C] = i32[fw + FH.F_CONTEXT];
  i32[ev + FH.EV_D] = i32[fw + FH.F_SEQNO_LO];
}

/**
 * Records fence event `kind` (EV_FENCE_*) of `fw`: arguments A–D are the fence (payload word,
 * generation, context, seqno), `e` the kind's own. Call it behind `tracing(i32, category)`.
 */
export function traceFence(arena: Arena, kind: number, fw: number, e: number): void {
  const i32 = arena.i32;
  traceEvent(arena, kind, fw, i32[fw + FH.PAYLOAD_B_GEN] & GEN_MASK, i32[fw + FH.F_CONTEXT], i32[fw + FH.F_SEQNO_LO], e);
}

export function seqnoOf(i32: Int32Array, fw: number): number {
  return i32[fw + F_SEQNO_HI] * 0x100000000 + (i32[fw + F_SEQNO_LO] >>> 0);
}

export function isSignaledFlag(i32: Int32Array, fw: number): boolean {
  return (Atomics.load(i32, fw + F_FLAGS) & FLAG_SIGNALED) !== 0;
}

/**
 * Marks the fence signaled with `ts` and detaches its callback list, with the lock held.
 * Returns the head of the detached callback list (0 none), or -1 when it was already signaled.
 * The caller runs the list (see inbox.ts) and must not touch the fence's list afterwards.
 * `tsIsNow` (default true): `ts` was read from the clock for this signal (false for a timestamp a
 * caller chose, which the trace event then does not use as its time). `record` (default false): push a signal record (see
 * signal.ts) when there is something a reaper would have to finish — waiters to wake, callbacks
 * to run — in the run of the flag's Atomics op; it receives the detached list in the run that
 * detaches it. Without a list it is popped here, once the waiters are notified; with one (a head
 * is returned) the caller runs the list under it and pops it (see signal.ts).
 *
 * Size matters here: V8 inlines no function of more than 460 bytes of bytecode, and inlined into
 * the signal paths this one costs nothing to call and lets the timestamp's BigInt go unallocated.
 * Its tracepoint alone is 35 bytes, which once took it past the limit (a traced-off signal then
 * cost ~10 % more than one built without tracepoints). Hence parameters without defaults (a
 * default costs ~30 bytes of prologue) and the layout as FH literals (hot.ts); `node --print-bytecode
 * --print-bytecode-filter=markSignaledLocked` shows its length (test/inline-budget.test.ts checks it).
 */
export function markSignaledLocked(arena: Arena, fw: number, ts: bigint, tsIsNow?: boolean, record?: boolean): number {
  const i32 = arena.i32;
  if (i32[fw + FH.F_FLAGS] & FH.FLAG_SIGNALED) return -1;
  arena.i64[(fw + FH.F_TIMESTAMP) >>> 1] = ts;
  // Timestamp first, then the flags: a reader that sees TIMESTAMP reads a complete value.
  const old = Atomics.or(i32, fw + FH.F_FLAGS, FH.SIGNALED_TIMESTAMP);
  // The list cannot change under the lock: read once. No waiters and no list (the common case):
  // nothing to notify, detach or record.
  const head = i32[fw + FH.F_CB_HEAD];
  if (old & FLAG_WAITERS || head !== 0) {
    let rec = 0;
    let pop = -1;
    if (record) {
      // The signal record, pushed in the run of the flag's Atomics op (plain writes written out
      // here, no call: a call's entry is a place to be terminated), so a reaper sees it whenever
      // the flag is up and the signal unfinished. The depth never reaches SIGNAL_CAP here (a signal
      // at the last record defers its list instead of running it: runRecorded); the test only keeps
      // a stray depth from writing past the records.
      const sb = arena.slotBase;
      const at = sb + FH.T_SIGNAL_DEPTH;
      const d = i32[at];
      if (d < FH.SIGNAL_CAP) {
        rec = sb + FH.T_SIGNAL + d * FH.SIG_WORDS;
        i32[rec + FH.SIG_FW] = fw;
        i32[rec + FH.SIG_FGEN] = i32[fw + FH.PAYLOAD_B_GEN] & GEN_MASK;
        i32[rec + FH.SIG_NODE] = 0;
        i32[rec + FH.SIG_SHARED] = 0;
      }
      i32[at] = d + 1;
      pop = d;
    }
    if (old & FLAG_WAITERS) Atomics.notify(i32, fw + FH.F_FLAGS);
    // From here to the record, plain writes only: a terminate() leaves the list on the fence (the
    // reaper detaches it) or in the record (the reaper dispatches the rest).
    if (head !== 0) {
      i32[fw + FH.F_CB_HEAD] = 0;
      i32[fw + FH.F_CB_TAIL] = 0;
      if (rec !== 0) {
        i32[rec + FH.SIG_NODE] = head;
        i32[rec + FH.SIG_NGEN] = i32[head + FH.PAYLOAD_B_GEN] & GEN_MASK;
        i32[rec + FH.SIG_NEXT] = i32[head + FH.CB_NEXT];
      }
    } else if (pop >= 0) {
      // Waiters only: notified above, nothing left for a reaper (a repeated notify is harmless).
      i32[arena.slotBase + FH.T_SIGNAL_DEPTH] = pop;
    }
  }
  if (i32[FH.TH_FLAGS] & FH.TC_FENCE) traceSignaled(arena, fw, tsIsNow); // inline test: see fenceInit
  return head;
}

/**
 * The dma_fence_signaled event, stamped with the fence's own timestamp when that is the signal's
 * time (it was read before the flag went up, so no waiter's wake can precede it in the trace).
 *
 * Written straight into the ring, not through traceEvent's generic argument list: inlined into
 * the signal path with everything it calls, where the generic recorder did not fit V8's
 * cumulative inlining budget beside markSignaledLocked and stayed a call of nine arguments.
 * Layout constants as FH literals (hot.ts): bytecode bytes count against that budget.
 */
function traceSignaled(arena: Arena, fw: number, tsIsNow: boolean | undefined): void {
  if (tsIsNow === false) return traceFence(arena, FH.EV_FENCE_SIGNALED, fw, arena.i32[fw + FH.F_ERROR]);
  const rw = ownRing(arena);
  if (rw === 0) return;
  const i32 = arena.i32;
  const ev = entryWord(i32, rw);
  i32[ev + FH.EV_NS_LO] = i32[fw + FH.F_TIMESTAMP];
  i32[ev + FH.EV_NS_HI] = i32[fw + (FH.F_TIMESTAMP + 1)];
  i32[ev + FH.EV_KIND] = FH.EV_FENCE_SIGNALED;
  fenceEventArgs(i32, ev, fw);
  i32[ev + FH.EV_E] = i32[fw + FH.F_ERROR];
  publishEntry(i32, rw);
}

/** Throws EINVAL unless `errno` is a fence error: an integer in -4095..-1. */
export function checkErrno(errno: unknown): void {
  if (!Number.isInteger(errno) || (errno as number) >= 0 || (errno as number) < -MAX_ERRNO)
    throw Errors.invalid(`fence error must be a negative errno in -${MAX_ERRNO}..-1, got ${describeValue(errno)}`);
}

/** Sets the error of an unsignaled fence. Throws EINVAL when signaled or errno is not in -4095..-1. */
export function setErrorChecked(i32: Int32Array, fw: number, errno: number): void {
  checkErrno(errno);
  if (isSignaledFlag(i32, fw)) throw Errors.invalid('setError on a signaled fence');
  i32[fw + F_ERROR] = errno;
}

/** Kernel status: 0 pending, 1 signaled OK, negative errno when signaled with an error. */
export function statusOf(i32: Int32Array, fw: number): number {
  if (!isSignaledFlag(i32, fw)) return 0;
  return i32[fw + F_ERROR] || 1;
}

export function timestampOf(arena: Arena, fw: number): bigint | undefined {
  if ((Atomics.load(arena.i32, fw + F_FLAGS) & FLAG_TIMESTAMP) === 0) return undefined;
  return arena.i64[(fw + F_TIMESTAMP) >>> 1];
}

/**
 * Takes a reference unless the count is already 0 (kernel dma_fence_get_rcu / kref_get_unless_zero).
 * Why a compare-exchange and not add-then-undo: a get racing the last put would briefly raise a
 * count of 0 to 1, and the release path stores 1 itself while it signals with -EDEADLK; the undo
 * could then take that reference away. A count of 0 is never touched here.
 * Threads: any. Returns true when a reference was taken, false when the fence had none left.
 */
export function fenceTryGet(i32: Int32Array, fw: number): boolean {
  let old = Atomics.load(i32, fw + F_REFCOUNT);
  for (;;) {
    if (old <= 0) return false;
    const seen = Atomics.compareExchange(i32, fw + F_REFCOUNT, old, old + 1);
    if (seen === old) return true;
    old = seen;
  }
}

/** Takes a reference (get-unless-zero, see {@link fenceTryGet}); throws EBADF when the fence already lost its last one. */
export function fenceGet(i32: Int32Array, fw: number): void {
  if (!fenceTryGet(i32, fw)) throw Errors.badHandle('fence', fw, `get on a fence with refcount ${Atomics.load(i32, fw + F_REFCOUNT)}`);
}

/**
 * Kernel dma_fence_is_later: is fence `fa` later than `fb` on their common context? Throws EINVAL
 * for fences of different contexts (they are not ordered).
 */
export function isLaterOnContext(i32: Int32Array, fa: number, fb: number): boolean {
  if (i32[fa + F_CONTEXT] !== i32[fb + F_CONTEXT]) throw Errors.invalid('isLater/later: fences of different contexts are not ordered');
  return seqnoLater(i32, fa, fb);
}

/** True when the "a is later than b" in a's ordering (32-bit wrap unless a is 64-bit). */
export function seqnoLater(i32: Int32Array, fa: number, fb: number): boolean {
  if (i32[fa + F_FLAGS] & FLAG_SEQNO64) return seqnoOf(i32, fa) > seqnoOf(i32, fb);
  return ((i32[fa + F_SEQNO_LO] - i32[fb + F_SEQNO_LO]) | 0) > 0;
}
