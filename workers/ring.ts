/**
 * An exporter's steps on the hand-off ring (see board.ts): claim a slot, record its progress,
 * hand the fence off, record its end, leave. Shared by the exporter worker and by a parent thread
 * that hands fences to importer workers itself. Every step writes its stage (S_STAGE) in the run
 * of the Atomics op it records — the Atomics op first, then plain writes only, with every index
 * computed before (no call in between, not even a small helper) — because terminate() lands at
 * function entries, loop back-edges and Atomics ops, never inside such a run: the recovery of a
 * killed exporter then reads exactly what it had done.
 */
import { Errno, Fence, FenceError, SyncFile, dropParkedRef, parkRef, type Arena } from '../src/index.js';
import {
  C, CARRIER_FD, CARRIER_TOKEN, DONE, EMPTY, EX_DONE, EX_LEFT, EX_PUBLISHED, EXPECT_CANCELED, PUBLISHED, RING_SLOTS, SF_CARRIER,
  SF_FENCE, SF_OP, STAGE_CLAIMED, STAGE_COUNTED, STAGE_ENDED, STAGE_INFLIGHT, STAGE_PUBLISHED, STAGE_SETTLED, STAGE_SUBMITTING,
  S_EXPECT, S_FREED, S_OWNER, S_RETURNING, S_STAGE, S_STATE, expectBit, fillingBy, isTaken, ringChanged, settleSlot, slotF64,
  slotWord, waitRing, type Board,
} from './board.js';

/** One exporter's side of the ring. Threads: that exporter only (its board index; 0 is the parent). */
export class RingExporter {
  readonly arena: Arena;
  readonly board: Board;
  /** Worker index (0: the parent). */
  readonly index: number;
  private cursor = 0;

  constructor(arena: Arena, board: Board, index: number) {
    this.arena = arena;
    this.board = board;
    this.index = index;
  }

  /** True when slots carry sync-file fds (C.CARRIER). */
  get fdCarrier(): boolean {
    return Atomics.load(this.board.i32, C.CARRIER) === CARRIER_FD;
  }

  /** True when slots carry hand-over tokens (C.CARRIER). */
  get tokenCarrier(): boolean {
    return Atomics.load(this.board.i32, C.CARRIER) === CARRIER_TOKEN;
  }

  /**
   * Claims an EMPTY or DONE slot while fewer than `maxInflight` fences are in flight. `block`:
   * waits (on ring changes) until one is free or `stopping()`. Returns the slot, or -1.
   */
  claim(maxInflight: number, block: boolean, stopping: () => boolean): number {
    const b32 = this.board.i32;
    for (;;) {
      if (stopping()) return -1;
      const seen = Atomics.load(b32, C.SEQ);
      if (Atomics.load(b32, C.INFLIGHT) < maxInflight) {
        for (let k = 0; k < RING_SLOTS; k++) {
          const i = (this.cursor + k) % RING_SLOTS;
          if (this.tryClaim(i)) {
            this.cursor = i + 1;
            return i;
          }
        }
      }
      if (!block) return -1;
      waitRing(this.board, seen, 5);
    }
  }

  private tryClaim(i: number): boolean {
    const b32 = this.board.i32;
    const f64 = this.board.f64;
    const state = slotWord(i, S_STATE);
    const owner = slotWord(i, S_OWNER);
    const stage = slotWord(i, S_STAGE);
    const carrier = slotF64(i, SF_CARRIER);
    const fd = this.fdCarrier;
    const token = this.tokenCarrier;
    const mine = fillingBy(this.index);
    // Every index is computed before the CAS: from it to the last plain write below there is no
    // call, so a terminate() leaves the claim recorded whole or not at all.
    const fresh = Atomics.compareExchange(b32, state, EMPTY, mine) === EMPTY;
    if (!fresh && Atomics.compareExchange(b32, state, DONE, mine) !== DONE) return false;
    b32[owner] = this.index;
    b32[stage] = STAGE_CLAIMED;
    if (fd) f64[carrier] = 0; // the importer closed that fd
    // A reclaimed slot carries the importer's reference back: dropped, and the word cleared, in one run.
    else if (!token) {
      if (!fresh) dropParkedRef(this.arena, f64, carrier);
    } else if (f64[carrier] !== 0) {
      // Received, or its importer died before receiving: then its sender takes it back (us now, or
      // its ledger when it leaves). A terminate() before the word is cleared leaves a token the
      // recovery's withdraw finds stale.
      withdrawToken(this.arena, f64[carrier]);
      f64[carrier] = 0;
    }
    return true;
  }

  /** An operation may exist from here on (the driver's reaper ends or frees it with us). */
  submitting(slot: number): void {
    this.board.i32[slotWord(slot, S_STAGE)] = STAGE_SUBMITTING;
  }

  /** Counts the slot's fence (C.FENCES). */
  counted(slot: number): void {
    const b32 = this.board.i32;
    const stage = slotWord(slot, S_STAGE);
    Atomics.add(b32, C.FENCES, 1);
    b32[stage] = STAGE_COUNTED;
  }

  /**
   * Hands `fence` off through claimed `slot`: the statuses it may end with (`expect`, EXPECT_*
   * bits), the operation's handle (for importers' commands; 0 none), and the carrier — a parked
   * reference, or a sync-file fd of this thread's — then publishes it.
   */
  handOff(slot: number, fence: Fence, opHandle: number, expect: number): void {
    const b32 = this.board.i32;
    const f64 = this.board.f64;
    const state = slotWord(slot, S_STATE);
    const stage = slotWord(slot, S_STAGE);
    const carrier = slotF64(slot, SF_CARRIER);
    Atomics.store(b32, slotWord(slot, S_EXPECT), expect);
    Atomics.store(b32, slotWord(slot, S_FREED), 0);
    b32[slotWord(slot, S_RETURNING)] = 0;
    f64[slotF64(slot, SF_FENCE)] = fence.handle;
    f64[slotF64(slot, SF_OP)] = opHandle;
    // An fd written late is still this thread's: its reaper closes it. A parked reference and its
    // handle go in together (parkRef), so recovery drops exactly what the word names.
    if (this.fdCarrier) f64[carrier] = SyncFile.create(this.arena, fence);
    else if (this.tokenCarrier) f64[carrier] = fence.share(); // ours (our ledger) until an importer receives it
    else parkRef(fence, f64, carrier);
    Atomics.add(b32, C.INFLIGHT, 1);
    b32[stage] = STAGE_INFLIGHT;
    Atomics.store(b32, state, PUBLISHED);
    b32[stage] = STAGE_PUBLISHED;
    b32[EX_PUBLISHED + this.index]++;
    ringChanged(this.board);
  }

  /**
   * Records the end of the slot's operation with `status` (as execute or cancel returned it):
   * counted, the slot's expectation narrowed to it, then S_FREED (importers take the fence lock
   * after it) — the last write of ours to the slot.
   */
  ended(slot: number, status: number): void {
    const b32 = this.board.i32;
    const stage = slotWord(slot, S_STAGE);
    const done = EX_DONE + this.index;
    if (status === Errno.ECANCELED) Atomics.add(b32, C.CANCELLED, 1);
    Atomics.add(b32, C.SIGNALS, 1);
    b32[stage] = STAGE_ENDED;
    b32[done]++;
    Atomics.add(b32, C.OPS, 1);
    b32[stage] = STAGE_SETTLED;
    Atomics.store(b32, slotWord(slot, S_EXPECT), expectBit(status));
    Atomics.store(b32, slotWord(slot, S_FREED), 1);
    settleSlot(this.board, slot);
    ringChanged(this.board);
  }

  /**
   * Waits (polling, bounded) while the fence of `slot` is not taken yet — unless an importer took
   * one of `later` (slots we published after it): that importer may be waiting for it, and we
   * execute it only after this one. So no importer ever waits on an exporter that waits on it.
   */
  awaitTake(slot: number, later: readonly number[], timeoutMs: number, stopping: () => boolean): void {
    const b32 = this.board.i32;
    const by = performance.now() + timeoutMs;
    const untaken = (s: number) => Atomics.load(b32, slotWord(s, S_STATE)) === PUBLISHED;
    while (untaken(slot) && later.every(untaken) && !stopping() && performance.now() < by) {
      waitRing(this.board, Atomics.load(b32, C.SEQ), 1);
    }
  }

  /** Slots this exporter published that no importer has handed back yet. */
  outstanding(): number {
    const b32 = this.board.i32;
    let n = 0;
    for (let i = 0; i < RING_SLOTS; i++) {
      const st = Atomics.load(b32, slotWord(i, S_STATE));
      if ((st === PUBLISHED || isTaken(st)) && b32[slotWord(i, S_OWNER)] === this.index) n++;
    }
    return n;
  }

  /** This exporter is finished: importers stop once none is left and the ring is drained. */
  leave(): void {
    const b32 = this.board.i32;
    if (b32[EX_LEFT + this.index] !== 0) return;
    Atomics.sub(b32, C.EXPORTERS_LEFT, 1);
    b32[EX_LEFT + this.index] = 1;
    ringChanged(this.board);
  }
}

/**
 * Withdraws an unreceived token if the calling thread shared it; a received or stale one is
 * nothing to do, another live exporter's stays in that exporter's ledger until it leaves (EPERM).
 */
export function withdrawToken(arena: Arena, token: number): void {
  try {
    Fence.withdraw(arena, token);
  } catch (e) {
    if (!(e instanceof FenceError && e.code === 'EPERM')) throw e;
  }
}

/** The statuses an operation may end with, before it ended: its exporter's plan, and importers' commands. */
export function plannedExpect(cancel: boolean, commands: boolean): number {
  return expectBit(cancel ? Errno.ECANCELED : 1) | (commands ? EXPECT_CANCELED : 0);
}

