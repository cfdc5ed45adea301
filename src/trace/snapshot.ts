/**
 * Reading the trace rings: a {@link TraceSnapshot} of the current session, copied out of every
 * thread's ring while threads may still record (the recorder is ring.ts).
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { ownerAlive, readName, ringBlocks, threadNameOf, traceNow } from './ring.js';

/** One recorded event, decoded. */
export interface RawEvent {
  /** Trace clock, ms. */
  ts: number;
  /** EV_* kind. */
  kind: number;
  /** The kind word's bits above the kind. */
  bits: number;
  /** First argument word; what the five mean depends on `kind` (the tracepoint table of the architecture document). */
  a: number;
  /** Second argument word. */
  b: number;
  /** Third argument word. */
  c: number;
  /** Fourth argument word. */
  d: number;
  /** Fifth argument word. */
  e: number;
}

/** One thread's ring of the current session. */
export interface ThreadEvents {
  /** The thread slot the ring belongs to. */
  slot: number;
  /** The thread's attach serial (tells apart threads that used the same slot in turn). */
  serial: number;
  /** Node's threadId of the thread. */
  threadId: number;
  /** The thread's name (`nameThread`, default "main" or "thread N"). */
  name: string;
  /** False once the thread left its slot (exited, was reaped, detached). */
  alive: boolean;
  /** Events recorded this session. */
  recorded: number;
  /** Of those, overwritten by newer ones (the ring was full). */
  lost: number;
  /** The events still in the ring, oldest first. */
  events: RawEvent[];
}

/** The current session as recorded so far. */
export interface TraceSnapshot {
  /** The session's number (each `start()` begins a new one). */
  session: number;
  /** True while the session records. */
  recording: boolean;
  /** Trace clock (ms) when the session started. */
  startMs: number;
  /** Trace clock (ms) when it stopped, or now if still recording. */
  endMs: number;
  /** Every thread's ring of this session. */
  threads: ThreadEvents[];
  /** Names of the threads attached when the snapshot was taken, by slot (also those that recorded nothing). */
  slotNames: Record<number, string>;
}

/**
 * Copies the current session's events out of every ring. Safe while threads record: a ring is
 * read between two looks at its count, and events that may have been overwritten meanwhile are
 * dropped (counted as lost). Threads: any attached thread.
 */
export function readTrace(arena: Arena): TraceSnapshot {
  const i32 = arena.i32;
  const f64 = arena.f64;
  const session = Atomics.load(i32, L.TH_SESSION);
  const stopped = f64[L.TH_STOPPED >>> 1];
  const recording = Atomics.load(i32, L.TH_FLAGS) !== 0;
  const threads: ThreadEvents[] = [];
  for (const rw of ringBlocks(arena)) {
    if (i32[rw + L.R_SESSION] !== session) continue;
    // The size and position are read from shared memory: held to what the ring's block can hold,
    // so a corrupted one reads garbage events from inside the ring, never past it or forever.
    const fits = Math.floor((arena.payloadBytes(rw - A.BLOCK_HEADER_WORDS) / 4 - L.R_ENTRIES) / L.EV_WORDS);
    const cap = Math.max(1, Math.min(i32[rw + L.R_CAP], fits));
    const head1 = Atomics.load(i32, rw + L.R_HEAD) >>> 0;
    const next = (i32[rw + L.R_NEXT] >>> 0) % cap;
    const n = Math.min(head1, cap);
    const first = head1 > cap ? next : 0;
    const events: RawEvent[] = [];
    for (let k = 0; k < n; k++) {
      const ev = rw + L.R_ENTRIES + ((first + k) % cap) * L.EV_WORDS;
      const word = i32[ev + L.EV_KIND];
      events.push({
        ts: (i32[ev + L.EV_NS_HI] * 0x100000000 + (i32[ev + L.EV_NS_LO] >>> 0)) / 1e6,
        kind: word & L.EVENT_KIND_MASK,
        bits: word >>> L.EVENT_BITS_SHIFT,
        a: i32[ev + L.EV_A],
        b: i32[ev + L.EV_B],
        c: i32[ev + L.EV_C],
        d: i32[ev + L.EV_D],
        e: i32[ev + L.EV_E],
      });
    }
    // Events the writer may have overwritten while we copied: those older than its new count allows.
    const head2 = Atomics.load(i32, rw + L.R_HEAD) >>> 0;
    const overwritten = Math.max(0, Math.min(n, head2 - cap - (head1 - n)));
    const kept = overwritten > 0 ? events.slice(overwritten) : events;
    threads.push({
      slot: i32[rw + L.R_SLOT],
      serial: i32[rw + L.R_SERIAL],
      threadId: i32[rw + L.R_THREAD_ID],
      name: readName(i32, rw + L.R_NAME_LEN) || `thread ${i32[rw + L.R_THREAD_ID]}`,
      alive: ownerAlive(arena, rw),
      recorded: head2,
      lost: head2 - kept.length,
      events: kept,
    });
  }
  threads.sort((x, y) => x.serial - y.serial);
  const slotNames: Record<number, string> = {};
  for (let s = 0; s < arena.maxThreads; s++)
    if (Atomics.load(i32, arena.slotWord(s) + A.T_STATE) === A.SLOT_LIVE) slotNames[s] = threadNameOf(arena, s);
  return {
    slotNames,
    session,
    recording,
    startMs: f64[L.TH_EPOCH >>> 1],
    endMs: recording || stopped === 0 ? traceNow() : stopped,
    threads,
  };
}
