/**
 * The pool scheduler's ready queue and pull loops, in shared memory: one control block per pool
 * (layout.ts, S_*) holding a FIFO of ready jobs (linked through J_NEXT) under a robust futex lock,
 * and the counts that tell who will take a queued job — pull loops looking for work (awake, or asleep on
 * the queue head, or asleep on WORK), kicks not yet started — so that a push wakes a sleeping loop,
 * or asks the pool's thread (BELL) to start one, only when no loop would take the job unasked.
 *
 * Pull loops run in pool workers (task.ts); the pool's thread owns the block (pool.ts). The jobs
 * themselves — when they become ready, how they finish — are jobs.ts and finish.ts.
 */
import type { Arena } from '../arena/arena.js';
import { isLinkedPayload } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import * as K from '../locks/layout.js';
import * as L from './layout.js';
import * as F from '../fence/layout.js';
import { acquireWord, releaseWord } from '../locks/lockword.js';
import { Errors } from '../errors.js';

const { BLOCK_HEADER_WORDS, BLOCK_HEADER_BYTES } = A;
const { J_NEXT } = L;
const { S_LOCK, S_HEAD, S_TAIL, S_QUEUED, S_PULLERS, S_LOOKING, S_SLEEPING, S_BELL, S_WORK, S_FLAGS, S_REFS, S_STARTED } = L;

const SCHED_BLOCK = BLOCK_HEADER_BYTES + L.SCHED_WORDS * 4;

/* ───────────── the main thread's side, seen from shared memory ───────────── */

/**
 * What the thread that owns a scheduler (the one that created its pool) does when ready jobs need
 * more pull loops: it starts them itself. Any other thread rings the scheduler's BELL instead.
 */
export interface SchedulerOwner {
  pump(): void;
}
const owners = new Map<Arena, Map<number, SchedulerOwner>>();

/** The owner registered for scheduler `sw` in this thread (see {@link schedCreate}), if any. */
export function schedOwner(arena: Arena, sw: number): SchedulerOwner | undefined {
  return owners.get(arena)?.get(sw);
}

/**
 * Allocates a scheduler block holding one reference (the pool's) and registers `owner` as this
 * thread's. Threads: the pool's thread. Returns its payload word index. Throws ENOMEM.
 */
export function schedCreate(arena: Arena, owner: SchedulerOwner): number {
  const sw = arena.allocBlock(SCHED_BLOCK, A.BlockType.INTERNAL) + BLOCK_HEADER_WORDS;
  arena.i32.fill(0, sw, sw + L.SCHED_WORDS);
  arena.i32[sw + S_REFS] = 1;
  let m = owners.get(arena);
  if (!m) owners.set(arena, (m = new Map()));
  m.set(sw, owner);
  return sw;
}

/** Takes one scheduler reference (a job's, until it finishes). Threads: any attached thread holding one. */
export function schedGet(arena: Arena, sw: number): void {
  Atomics.add(arena.i32, sw + S_REFS, 1);
}

/**
 * Drops one scheduler reference; the last frees the block. `at` (≠ 0): the word that records the
 * reference (a job's J_SCHED), cleared in the drop's run; the last reference's block moves to the
 * slot's spare word in that run too (see fence/ledger.ts freeInFlight), so a thread terminated at
 * any point drops the reference once and leaks no block. Threads: any attached thread.
 */
export function schedPut(arena: Arena, sw: number, at = 0): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[sw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  const last = Atomics.sub(i32, sw + S_REFS, 1) === 1;
  if (at !== 0) i32[at] = 0;
  if (!last) return;
  i32[sb + F.T_LEDGER_SPARE_GEN] = gen;
  i32[sb + F.T_LEDGER_SPARE] = sw;
  owners.get(arena)?.delete(sw);
  arena.freeBlock(sw - BLOCK_HEADER_WORDS);
  i32[sb + F.T_LEDGER_SPARE] = 0;
}

/**
 * Marks the scheduler destroyed: pull loops leave, the owner's kick loop ends, and a job pushed from
 * now on is reported to its pusher as such (see {@link push}). Threads: the owner. The caller
 * cancels what is queued (jobs.ts drainQueue).
 */
export function schedDestroy(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  lockSched(arena, sw);
  i32[sw + S_FLAGS] |= L.SF_DESTROYED;
  unlockSched(arena, sw);
  owners.get(arena)?.delete(sw);
  Atomics.add(i32, sw + S_WORK, 1);
  Atomics.notify(i32, sw + S_WORK); // sleeping pull loops leave
  Atomics.add(i32, sw + S_BELL, 1);
  Atomics.notify(i32, sw + S_BELL);
}

/** Counts the main thread reads to decide how many pull loops to start (hints, read without the lock). */
export function schedCounts(arena: Arena, sw: number): { queued: number; pullers: number; looking: number; started: number } {
  const i32 = arena.i32;
  return {
    queued: Atomics.load(i32, sw + S_QUEUED),
    pullers: Atomics.load(i32, sw + S_PULLERS),
    looking: Atomics.load(i32, sw + S_LOOKING),
    started: Atomics.load(i32, sw + S_STARTED),
  };
}

export function lockSched(arena: Arena, sw: number): void {
  // A dead holder's word is released by the locks layer's reaper (owner died); the queue is
  // consistent at every call boundary (a link and its count are one run), so taking over needs nothing more.
  acquireWord(arena, sw + S_LOCK, K.LK_FUTEX);
}
export function unlockSched(arena: Arena, sw: number): void {
  releaseWord(arena, sw + S_LOCK, K.LK_FUTEX);
}

/**
 * Moves job `jw` WAITING → QUEUED and appends it to the ready queue with the queue's own reference
 * — only the caller that wins the transition. When ready jobs outnumber the pull loops looking for
 * work, asks for another loop (the owner thread starts it, others ring BELL). Threads: any attached
 * thread holding a reference on the job. Returns true when the scheduler is destroyed: nobody will
 * take the job, the caller cancels the queue. `deferPump`: see linked. Kill-safe: the transition, under the lock, names the
 * job in the slot (T_PUSHED) in its run; {@link linkTail} clears it in the link's run. A thread
 * terminated between leaves a QUEUED job in no queue, which the DISPATCH reaper (jobs.ts) links.
 */
export function pushReady(arena: Arena, sw: number, jw: number, deferPump = false): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[jw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  lockSched(arena, sw);
  if (Atomics.compareExchange(i32, jw + L.J_STATE, L.JS_WAITING, L.JS_QUEUED) !== L.JS_WAITING) {
    unlockSched(arena, sw);
    return false;
  }
  i32[sb + L.T_PUSHED_GEN] = gen;
  i32[sb + L.T_PUSHED] = jw;
  return linkTail(arena, sw, jw, deferPump);
}

/**
 * Links QUEUED job `jw` (in no queue) at the queue's tail, lock held (released in {@link linked}):
 * the queue's reference, link, count and the clearing of T_PUSHED in one run (the Atomics.add, then
 * plain writes only). Threads: a pusher, or the reaper of one that died before its link. A
 * destroyed queue is drained by its pusher (true is returned): the link's run names the scheduler
 * in T_DRAIN, which jobs.ts drainQueue clears once the queue is empty, so the reaper of a pusher
 * terminated in between drains it (nobody else would).
 */
export function linkTail(arena: Arena, sw: number, jw: number, deferPump: boolean): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  const gen = i32[sw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  Atomics.add(i32, jw + F.F_REFCOUNT, 1);
  i32[jw + J_NEXT] = 0;
  const tail = i32[sw + S_TAIL];
  if (tail) i32[tail + J_NEXT] = jw;
  else i32[sw + S_HEAD] = jw;
  i32[sw + S_TAIL] = jw;
  i32[sw + S_QUEUED]++;
  i32[sb + L.T_PUSHED] = 0;
  if (i32[sw + S_FLAGS] & L.SF_DESTROYED) {
    i32[sb + L.T_DRAIN_GEN] = gen;
    i32[sb + L.T_DRAIN] = sw;
  }
  return linked(arena, sw, deferPump);
}

/**
 * Puts a job a dead loop had taken, not started, back at the queue's head with the reference the caller
 * hands over (the queue's), as {@link pushReady} links. Threads: a reaper. Returns true — not linked,
 * the reference still the caller's — when the scheduler is destroyed: the caller cancels the job. */
export function requeue(arena: Arena, sw: number, jw: number): boolean {
  const i32 = arena.i32;
  lockSched(arena, sw);
  if (i32[sw + S_FLAGS] & L.SF_DESTROYED) {
    unlockSched(arena, sw);
    return true;
  }
  const head = i32[sw + S_HEAD];
  i32[jw + J_NEXT] = head;
  i32[sw + S_HEAD] = jw;
  if (head === 0) i32[sw + S_TAIL] = jw;
  i32[sw + S_QUEUED]++;
  return linked(arena, sw, true);
}

/**
 * The end of {@link linkTail} and {@link requeue} (lock held; released here): wakes a sleeping loop,
 * asks for one when none would take the job; `deferPump`: from a microtask (a reaper starts no worker). */
function linked(arena: Arena, sw: number, deferPump: boolean): boolean {
  const i32 = arena.i32;
  const queued = i32[sw + S_QUEUED];
  const destroyed = (i32[sw + S_FLAGS] & L.SF_DESTROYED) !== 0;
  const short = queued > i32[sw + S_LOOKING];
  // Looking loops that are awake — spinning on HEAD, or finishing the job whose signal is pushing
  // this one — take the first jobs: waking a sleeper for those would only have it find nothing and
  // put a third thread on two busy cores. Beyond them, a sleeping loop is woken.
  const wake = queued > i32[sw + S_LOOKING] - i32[sw + S_SLEEPING];
  unlockSched(arena, sw);
  if (wake) {
    Atomics.add(i32, sw + S_WORK, 1);
    Atomics.notify(i32, sw + S_WORK, 1);
  }
  if (destroyed) return true;
  if (!short) return false;
  const owner = owners.get(arena)?.get(sw);
  if (owner && deferPump) queueMicrotask(() => owner.pump());
  else if (owner) owner.pump();
  else {
    Atomics.add(i32, sw + S_BELL, 1);
    Atomics.notify(i32, sw + S_BELL);
  }
  return false;
}

/**
 * Takes the first queued job (0 when empty). Called with the scheduler lock held. The links are
 * read from shared memory and checked before use (a corrupted one would hand a pull loop any word
 * of the arena as a job): on a bad one the lock is dropped and ENOTRECOVERABLE thrown.
 */
function unlinkFirst(arena: Arena, sw: number): number {
  const i32 = arena.i32;
  const jw = i32[sw + S_HEAD];
  if (jw === 0) return 0;
  const next = i32[jw + J_NEXT];
  if (!isLinkedPayload(arena, jw, A.BlockType.FENCE) || (next !== 0 && !isLinkedPayload(arena, next, A.BlockType.FENCE))) {
    unlockSched(arena, sw);
    throw Errors.corruptArena(`the ready queue of scheduler @${sw * 4} links byte ${jw * 4} or ${next * 4}, no live job`);
  }
  i32[sw + S_HEAD] = next;
  if (next === 0) i32[sw + S_TAIL] = 0;
  i32[sw + S_QUEUED]--;
  return jw;
}

/**
 * Takes the first queued job outside any pull loop (0 when empty). Threads: any attached thread.
 * `record`: the take is recorded in the thread slot as a pull loop's is (T_PULL_TAKEN, the queue's
 * reference counted), in the unlink's run — the caller must find T_PULL_TAKEN_REFS 0 (nothing of a
 * pull loop's there) and end the job with finish.ts cancelTaken.
 */
export function takeQueued(arena: Arena, sw: number, record = false): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  lockSched(arena, sw);
  const jw = unlinkFirst(arena, sw);
  if (jw !== 0 && record) {
    i32[sb + L.T_PULL_TAKEN_GEN] = i32[jw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
    i32[sb + L.T_PULL_TAKEN_REFS] = 1; // the queue's
    i32[sb + L.T_PULL_TAKEN] = jw;
  }
  unlockSched(arena, sw);
  return jw;
}

/* ───────────── pull loops (pool workers) ───────────── */

/**
 * Enters a pull loop for scheduler `sw` in the calling thread: counted in PULLERS and LOOKING, and
 * recorded in the thread slot so that a reaper can take it out again if the thread dies.
 */
export function enterPull(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  lockSched(arena, sw);
  i32[sw + S_PULLERS]++;
  i32[sw + S_LOOKING]++;
  i32[sw + S_STARTED] = (i32[sw + S_STARTED] + 1) | 0;
  i32[sb + L.T_PULL_SCHED] = sw;
  i32[sb + L.T_PULL_GEN] = arena.generationAt(sw - BLOCK_HEADER_WORDS);
  i32[sb + L.T_PULL_LOOPS]++;
  i32[sb + L.T_PULL_LOOKING]++;
  unlockSched(arena, sw);
}

/** What {@link takeOrPark} returns when the loop should sleep (the WORK value is in `parkedOn`). */
export const PARK = 0;
/** What {@link takeOrPark} returns when the loop must leave (the pool was destroyed); it has left. */
export const LEAVE = -1;

/** A pull loop's parking state: the WORK value to sleep on, and whether it is counted asleep. */
export interface Park {
  parkedOn: number;
  asleep: boolean;
}

/**
 * Takes the next ready job for a looking pull loop (its payload word, > 0). An empty queue is
 * watched for `lingerUs`, spinning on its head; still empty, the call counts the loop SLEEPING and
 * returns PARK with the WORK value to sleep on in `park.parkedOn`. Going to sleep — re-checking the
 * queue, counting the sleeper, reading WORK — happens under the lock that pushes take: a push either
 * sees the loop awake (and it takes the job) or counted asleep, and then moves WORK after that read
 * (so the sleep returns at once). A loop that was asleep is counted awake again on its next call.
 * A destroyed scheduler makes the loop leave (LEAVE, counts updated). The loop stays counted
 * LOOKING throughout.
 */
export function takeOrPark(arena: Arena, sw: number, lingerUs: number, park: Park): number {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  let end = -1;
  for (;;) {
    lockSched(arena, sw);
    if (park.asleep) {
      park.asleep = false;
      i32[sw + S_SLEEPING]--;
      i32[sb + L.T_PULL_SLEEPING]--;
    }
    const jw = unlinkFirst(arena, sw);
    if (jw !== 0) {
      // Recorded in the unlink's run (no call since its last write): a thread terminated from here
      // to the job's ledger record (finish.ts startJob) leaves it to the DISPATCH reaper, not lost.
      i32[sb + L.T_PULL_TAKEN_GEN] = i32[jw - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
      i32[sb + L.T_PULL_TAKEN_REFS] = 1; // the queue's
      i32[sb + L.T_PULL_TAKEN] = jw;
      i32[sw + S_LOOKING]--;
      i32[sb + L.T_PULL_LOOKING]--;
      unlockSched(arena, sw);
      return jw;
    }
    if (i32[sw + S_FLAGS] & L.SF_DESTROYED) {
      leaveLocked(arena, sw);
      unlockSched(arena, sw);
      return LEAVE;
    }
    const now = performance.now();
    if (end < 0) end = now + lingerUs / 1000;
    if (now >= end) {
      park.asleep = true;
      i32[sw + S_SLEEPING]++;
      i32[sb + L.T_PULL_SLEEPING]++;
      park.parkedOn = Atomics.load(i32, sw + S_WORK);
      unlockSched(arena, sw);
      return PARK;
    }
    unlockSched(arena, sw);
    // Linger: a spinning waiter catches a push in well under a microsecond, where a sleeping one
    // costs the next job a wake-up (≈13 µs, ≈120 µs if the core idled).
    while (Atomics.load(i32, sw + S_HEAD) === 0 && performance.now() < end) for (let k = 0; k < 32; k++) if (Atomics.load(i32, sw + S_HEAD) !== 0) break;
  }
}

/** Index of the scheduler's WORK word, which sleeping pull loops wait on. */
export const workIndex = (sw: number): number => sw + S_WORK;

/**
 * A pull loop that slept its idle time without work leaves (counts updated). Returns false — and
 * the loop stays, counted awake — when a job was queued meanwhile.
 */
export function leaveIdle(arena: Arena, sw: number, park: Park): boolean {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  lockSched(arena, sw);
  if (park.asleep) {
    park.asleep = false;
    i32[sw + S_SLEEPING]--;
    i32[sb + L.T_PULL_SLEEPING]--;
  }
  const stay = i32[sw + S_HEAD] !== 0 && !(i32[sw + S_FLAGS] & L.SF_DESTROYED);
  if (!stay) leaveLocked(arena, sw);
  unlockSched(arena, sw);
  return !stay;
}

/** The calling thread's looking loop leaves the scheduler's counts (lock held). */
function leaveLocked(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  const sb = arena.slotBase;
  i32[sw + S_PULLERS]--;
  i32[sw + S_LOOKING]--;
  i32[sb + L.T_PULL_LOOKING]--;
  if (--i32[sb + L.T_PULL_LOOPS] === 0) i32[sb + L.T_PULL_SCHED] = 0;
}

/** The loop's job is over: it looks for the next (counted before the job's fence signals). */
export function lookAgain(arena: Arena, sw: number): void {
  const i32 = arena.i32;
  lockSched(arena, sw);
  i32[sw + S_LOOKING]++;
  i32[arena.slotBase + L.T_PULL_LOOKING]++;
  unlockSched(arena, sw);
}

/** Handle of the scheduler block (posted to pool workers). */
export function schedHandle(arena: Arena, sw: number): number {
  return arena.handleOf(sw - BLOCK_HEADER_WORDS);
}

/** Word index of a scheduler's BELL (the owner's kick loop waits on it). */
export const bellIndex = (sw: number): number => sw + S_BELL;

/** Validates a scheduler handle posted to a worker; returns its payload word. Throws EBADF / EINVAL. */
export function schedFromHandle(arena: Arena, handle: number): number {
  return arena.resolve(handle, A.BlockType.INTERNAL, 'scheduler') + BLOCK_HEADER_WORDS;
}
