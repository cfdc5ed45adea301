/**
 * The trace recorder: every thread records its events into a ring of its own in the arena (one
 * block, allocated on the thread's first event of a session), so recording takes no lock, shares
 * no cache line with another thread's writes and allocates nothing per event. A full ring
 * overwrites its oldest events (a flight recorder); the reader (snapshot.ts) reports how many were lost.
 *
 * Off by default. A tracepoint is `if (tracing(i32, TC_X)) traceEvent(arena, EV_Y, …)`: with
 * tracing off that is one load of a header word that nobody writes while recording, and a branch.
 * The hottest paths (fence init, signal, destroy) write the test inline, `if (i32[TH_FLAGS] & TC_X)`,
 * which spares the imported function's binding and target checks at the call site.
 *
 * Rings outlive their threads: a worker's events are exported after it exited. A ring is freed by
 * its owner (when a new session needs another size) or, once its owner is gone, by the next
 * {@link startTrace} or {@link disposeTrace}. The arena check counts rings as permanent, not leaks.
 *
 * The trace clock is the monotonic clock that fence timestamps use (`process.hrtime.bigint`), so one
 * timeline holds every thread's events and a signal's own timestamp can stand for the event's.
 */
import { isMainThread, threadId } from 'node:worker_threads';
import type { Arena } from '../arena/arena.js';
import { onCheck } from '../arena/hooks.js';
import * as A from '../arena/layout.js';
import { Errors, describeValue } from '../errors.js';
import * as L from './layout.js';

// Module constants, not namespace loads: optimized code folds a module's own constants, so the
// recording path reads no layout offset at run time.
const { EV_A, EV_B, EV_C, EV_D, EV_E, EV_KIND, EV_WORDS, R_CAP, R_ENTRIES, R_HEAD, R_MAGIC, R_NAME_LEN, R_NEXT, R_SERIAL, R_SESSION, R_SLOT, R_THREAD_ID, THREAD_NAME_WORDS, TH_FLAGS, TH_RING_EVENTS, TH_SESSION, TRACE_MAGIC, T_NAME, T_NAME_LEN, T_TRACE_NO_RING, T_TRACE_RING } = L;
const { BLOCK_HEADER_WORDS, T_SERIAL } = A;
const TRACE_BLOCK = A.BlockType.TRACE;

/* ───────────── clock ───────────── */

/**
 * The monotonic clock fence timestamps use, `process.hrtime.bigint`, looked up once (`process` is
 * a dictionary-mode object: `process.hrtime` is a hash lookup per call). An event stores its value
 * as one 64-bit word pair, the format of a fence timestamp: no [s, ns] array, one store. A clock
 * read is most of what an event costs (~40 ns here; performance.now() and Date.now() cost more).
 */
const hrtimeBigInt = process.hrtime.bigint;

/** The trace clock: monotonic milliseconds, the same in every thread of the process. */
export function traceNow(): number {
  return Number(hrtimeBigInt()) / 1e6;
}

/* ───────────── recording ───────────── */

/**
 * True when events of category `cat` (TC_*) are being recorded: one load of the header's flags
 * word. Small so that V8 inlines it at every tracepoint.
 */
export function tracing(i32: Int32Array, cat: number): boolean {
  return (i32[TH_FLAGS] & cat) !== 0;
}

/**
 * Records one event, stamped now, in the calling thread's ring. Call it behind {@link tracing}.
 * Threads: any attached thread, into its own ring only. Never throws: without a ring (the arena is
 * out of memory) the event is dropped.
 *
 * The generic recorder of the tracepoints that take no specialised one: the fence init and signal
 * events, on the create+signal+put path, write their entries themselves (fence/core.ts) with
 * {@link ownRing}, {@link entryWord} and {@link publishEntry}. Behind each tracepoint's check, a
 * branch that gathers no type feedback while tracing is off, so untraced code inlines none of it
 * (the core bench's "tracing off" rows compare with a build without tracepoints). All its loads
 * and stores are to this thread's slot and ring.
 */
export function traceEvent(arena: Arena, kind: number, a: number, b: number, c: number, d: number, e: number): void {
  const rw = ownRing(arena);
  if (rw === 0) return;
  const i32 = arena.i32;
  const ev = entryWord(i32, rw);
  arena.i64[ev >>> 1] = hrtimeBigInt();
  i32[ev + EV_KIND] = kind;
  i32[ev + EV_A] = a;
  i32[ev + EV_B] = b;
  i32[ev + EV_C] = c;
  i32[ev + EV_D] = d;
  i32[ev + EV_E] = e;
  publishEntry(i32, rw);
}

/** Block bytes (header included) of a ring of `events` events, before rounding to its size class. */
function ringBytes(events: number): number {
  return A.BLOCK_HEADER_BYTES + (L.R_ENTRIES + events * L.EV_WORDS) * 4;
}

/** Bytes of arena a ring of `events` events takes (its whole block). */
export function ringBlockBytes(events: number): number {
  const need = ringBytes(events);
  const cls = A.SIZE_CLASSES.find((c) => c >= need);
  if (cls === undefined) throw Errors.invalid(`a trace ring of ${events} events does not fit the largest block`);
  return cls;
}

/** Events a ring holds when it fills the size class that `events` events need (never fewer). */
export function ringCapacity(events: number): number {
  const cls = ringBlockBytes(events);
  return Math.floor(((cls - A.BLOCK_HEADER_BYTES) / 4 - L.R_ENTRIES) / L.EV_WORDS);
}

/*
 * A ring write in three parts, for recorders that fill an entry themselves (one call from the
 * tracepoint, no generic argument list): the ring, the entry's word, then its publication. Each is
 * small, so V8 inlines them into the recorder. Only the calling thread writes its ring: plain
 * loads and stores.
 */

/**
 * The calling thread's ring of the current session, set up by {@link openRing} at the thread's
 * first event of the session: its payload word, or 0 without one (no session, or the arena was
 * full: the event is dropped).
 */
export function ownRing(arena: Arena): number {
  const i32 = arena.i32;
  const rw = i32[arena.slotBase + T_TRACE_RING];
  return rw !== 0 && i32[rw + R_SESSION] === i32[TH_SESSION] ? rw : openRing(arena);
}

/**
 * Word index of the entry that ring `rw`'s next event fills: even (an even payload word, ENTRIES
 * and EV_WORDS even), so the event's time is one BigInt64 store at `ev >>> 1`.
 */
export function entryWord(i32: Int32Array, rw: number): number {
  return rw + R_ENTRIES + i32[rw + R_NEXT] * EV_WORDS;
}

/**
 * Publishes the entry at ring `rw`'s next position, written before: the position, then the count.
 * A thread terminated before this leaves an entry no reader takes.
 */
export function publishEntry(i32: Int32Array, rw: number): void {
  const next = i32[rw + R_NEXT] + 1;
  i32[rw + R_NEXT] = next === i32[rw + R_CAP] ? 0 : next;
  i32[rw + R_HEAD] = (i32[rw + R_HEAD] + 1) | 0;
}

/**
 * The calling thread's ring for the current session, set up now: its ring of an earlier session is
 * reset, or replaced when the session wants another size; a thread without one allocates it.
 * Returns the ring's payload word, or 0 when there is no session or no ring could be had (the
 * arena is full: this session's events of this thread are dropped). Out of the write path: it runs
 * once per thread and session.
 */
function openRing(arena: Arena): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const session = i32[TH_SESSION];
  let rw = i32[sb + T_TRACE_RING];
  if (session === 0 || i32[sb + T_TRACE_NO_RING] === session) return 0;
  const cap = i32[TH_RING_EVENTS];
  if (rw !== 0 && i32[rw + R_CAP] !== cap) {
    // Our own ring of an earlier session: no other thread writes or frees a live thread's ring.
    i32[sb + T_TRACE_RING] = 0;
    i32[rw + R_MAGIC] = 0;
    arena.freeBlock(rw - BLOCK_HEADER_WORDS);
    rw = 0;
  }
  if (rw === 0) {
    let hw: number;
    try {
      hw = arena.allocBlock(ringBytes(cap), TRACE_BLOCK);
    } catch {
      i32[sb + T_TRACE_NO_RING] = session; // the arena is full: drop this session's events
      return 0;
    }
    rw = hw + BLOCK_HEADER_WORDS;
    // Recorded in the slot in the run of the allocation; the ring counts as ours (see
    // reclaimRings) only once MAGIC is set below, after the owner fields.
    i32[sb + T_TRACE_RING] = rw;
  }
  i32[rw + R_SLOT] = arena.slot;
  i32[rw + R_SERIAL] = i32[sb + T_SERIAL];
  i32[rw + R_THREAD_ID] = threadId;
  i32[rw + R_CAP] = cap;
  i32[rw + R_NEXT] = 0;
  i32[rw + R_HEAD] = 0;
  if (i32[sb + T_NAME_LEN] === 0) writeName(arena, sb + T_NAME_LEN, defaultThreadName());
  i32.copyWithin(rw + R_NAME_LEN, sb + T_NAME_LEN, sb + T_NAME + THREAD_NAME_WORDS);
  i32[rw + R_SESSION] = session;
  // Last: a reader or a reclaimer trusts the header only after the magic.
  Atomics.store(i32, rw + R_MAGIC, TRACE_MAGIC);
  return rw;
}

/* ───────────── thread names ───────────── */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function defaultThreadName(): string {
  return isMainThread ? 'main' : `thread ${threadId}`;
}

/** Writes `name` (UTF-8, cut to whole characters within THREAD_NAME_MAX_BYTES) at word `at` (length, then bytes). */
function writeName(arena: Arena, at: number, name: string): void {
  const bytes = new Uint8Array(L.THREAD_NAME_MAX_BYTES);
  let { written } = encoder.encodeInto(name, bytes);
  // encodeInto never splits a character: `written` bytes are whole characters.
  written = Math.min(written ?? 0, L.THREAD_NAME_MAX_BYTES);
  const words = new Int32Array(bytes.buffer);
  arena.i32[at] = written;
  arena.i32.set(words, at + 1);
}

/** Reads a name written by {@link writeName} at word `at`. */
export function readName(i32: Int32Array, at: number): string {
  const len = i32[at];
  if (!(len > 0 && len <= L.THREAD_NAME_MAX_BYTES)) return '';
  const words = i32.slice(at + 1, at + 1 + L.THREAD_NAME_WORDS);
  return decoder.decode(new Uint8Array(words.buffer, 0, len));
}

/**
 * Names the calling thread in `arena` ("exporter 1"): trace tracks and arena dumps show it.
 * Longer names are cut to THREAD_NAME_MAX_BYTES bytes. Threads: the thread being named.
 * Throws EINVAL for a name that is not a non-empty string.
 */
export function nameThread(arena: Arena, name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw Errors.invalid('a thread name must be a non-empty string');
  const sb = arena.slotBase;
  writeName(arena, sb + L.T_NAME_LEN, name);
  const rw = arena.i32[sb + L.T_TRACE_RING];
  if (rw !== 0) arena.i32.copyWithin(rw + L.R_NAME_LEN, sb + L.T_NAME_LEN, sb + L.T_NAME + L.THREAD_NAME_WORDS);
}

/** The name of the occupant of thread slot `s`: its own, or "main" / "thread <threadId>". */
export function threadNameOf(arena: Arena, s: number): string {
  const b = arena.slotWord(s);
  const tid = arena.i32[b + A.T_THREAD_ID];
  return readName(arena.i32, b + L.T_NAME_LEN) || (tid === 0 ? 'main' : `thread ${tid}`);
}

/** The calling thread's name (its default when it never named itself). */
export function ownThreadName(arena: Arena): string {
  return threadNameOf(arena, arena.slot);
}

/* ───────────── sessions ───────────── */

/** Events per ring when start() is given no size: what fills a 256 KiB block. */
export const DEFAULT_RING_EVENTS = ringCapacity(8000);
/** Largest ring: what fills the largest size class. */
export const MAX_RING_EVENTS = Math.floor(((A.SIZE_CLASSES[A.NCLASSES - 1] - A.BLOCK_HEADER_BYTES) / 4 - L.R_ENTRIES) / L.EV_WORDS);

/**
 * Starts a recording session: `categories` (TC_* bits) are recorded from now on, into rings of
 * `events` events (rounded up to fill their block). Rings left by threads that are gone are freed
 * first; events of earlier sessions no longer count. Threads: any attached thread; one session at
 * a time per arena. Throws EINVAL for bad options.
 */
export function startTrace(arena: Arena, categories: number, events: number): void {
  if (!Number.isInteger(categories) || categories <= 0 || (categories & ~L.TC_ALL) !== 0)
    throw Errors.invalid(`trace categories must be a non-empty set of known categories, got ${describeValue(categories)}`);
  if (!Number.isInteger(events) || events < 16 || events > MAX_RING_EVENTS)
    throw Errors.invalid(`trace ring size must be an integer number of events in 16..${MAX_RING_EVENTS}, got ${describeValue(events)}`);
  const i32 = arena.i32;
  Atomics.store(i32, L.TH_FLAGS, 0);
  reclaimRings(arena);
  i32[L.TH_RING_EVENTS] = ringCapacity(events);
  arena.f64[L.TH_EPOCH >>> 1] = traceNow();
  arena.f64[L.TH_STOPPED >>> 1] = 0;
  // The session moves before the flags open: a thread's first event of this session finds its
  // ring stale and resets it.
  Atomics.add(i32, L.TH_SESSION, 1);
  Atomics.store(i32, L.TH_FLAGS, categories);
}

/** Stops recording (the session's events stay readable until the next start). Threads: any. */
export function stopTrace(arena: Arena): void {
  const i32 = arena.i32;
  if (Atomics.exchange(i32, L.TH_FLAGS, 0) !== 0) arena.f64[L.TH_STOPPED >>> 1] = traceNow();
}

/** Categories being recorded (TC_* bits; 0 when off). */
export function traceFlags(arena: Arena): number {
  return Atomics.load(arena.i32, L.TH_FLAGS);
}

/** Stops recording and frees the rings of threads that are gone (live threads keep theirs for reuse). */
export function disposeTrace(arena: Arena): void {
  stopTrace(arena);
  reclaimRings(arena);
}

/** Payload words of every ring block whose header is complete (MAGIC set). */
export function ringBlocks(arena: Arena): number[] {
  const out: number[] = [];
  const i32 = arena.i32;
  arena.walk((hw, _size, state, type) => {
    const rw = hw + A.BLOCK_HEADER_WORDS;
    if (state === A.STATE_LIVE && type === A.BlockType.TRACE && Atomics.load(i32, rw + L.R_MAGIC) === L.TRACE_MAGIC) out.push(rw);
  });
  return out;
}

/** True while the thread that owns ring `rw` is still the occupant of its slot. */
export function ownerAlive(arena: Arena, rw: number): boolean {
  const i32 = arena.i32;
  const s = i32[rw + L.R_SLOT];
  if (!(s >= 0 && s < arena.maxThreads)) return false;
  const b = arena.slotWord(s);
  return Atomics.load(i32, b + A.T_STATE) === A.SLOT_LIVE && i32[b + A.T_SERIAL] === i32[rw + L.R_SERIAL];
}

/**
 * Frees the rings whose owner is gone (dead, detached, its slot taken by another thread): nobody
 * writes them any more. A ring still being set up has no MAGIC yet and is left alone.
 */
function reclaimRings(arena: Arena): void {
  for (const rw of ringBlocks(arena)) {
    if (ownerAlive(arena, rw)) continue;
    // Two reclaimers (two threads starting at once) race for it: one clears the magic and frees.
    if (Atomics.compareExchange(arena.i32, rw + L.R_MAGIC, L.TRACE_MAGIC, 0) !== L.TRACE_MAGIC) continue;
    arena.freeBlock(rw - A.BLOCK_HEADER_WORDS);
  }
}

onCheck((arena) => ({ permanent: ringBlocks(arena) }));

/* ───────────── lock holds ───────────── */

/**
 * Lock words whose acquisition this thread recorded (a contended one): their release is recorded
 * too, so that the hold shows as a span. Uncontended acquisitions are not recorded (the kernel's
 * lock contention tracepoints do the same): they cost one CAS, and a clock read would triple that.
 */
const tracedHolds: number[] = [];
/**
 * How many entries {@link tracedHolds} has: the release slow paths test it (a traced hold's word
 * carries a waiter bit of its own that sends its release there: see acquireContended).
 */
export let tracedHoldCount = 0;

/** Records that this thread holds lock word `idx` after a recorded (contended) acquisition. */
export function noteTracedHold(idx: number): void {
  tracedHolds.push(idx);
  tracedHoldCount = tracedHolds.length;
}

/** Called on every release while {@link tracedHoldCount} is not 0: records the end of a traced hold of `idx`. */
export function traceRelease(arena: Arena, idx: number): void {
  const k = tracedHolds.lastIndexOf(idx);
  if (k < 0) return;
  tracedHolds.splice(k, 1);
  tracedHoldCount = tracedHolds.length;
  if (tracing(arena.i32, L.TC_LOCK)) traceEvent(arena, L.EV_LOCK_RELEASED, idx, 0, 0, 0, 0);
}
