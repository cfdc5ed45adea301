/**
 * The walker behind `arena.describe()`: reads every layer's structs (so it sits above them all,
 * like a debugfs file reads every driver) and builds an {@link ArenaDump}. Reads only — it takes no
 * lock and writes nothing — so it can describe an arena whose threads are hung, and also one whose
 * threads keep running (what it then sees may be torn; every list walk is bounded).
 */
import type { Arena } from '../arena/arena.js';
import { threadField } from '../arena/check.js';
import * as A from '../arena/layout.js';
import * as CT from '../containers/layout.js';
import * as DR from '../driver/layout.js';
import { errnoName } from '../errors.js';
import { fenceView } from '../fence/fence.js';
import * as FL from '../fence/layout.js';
import { findOps } from '../fence/ops.js';
import * as K from '../locks/layout.js';
import * as RT from '../runtime/layout.js';
import * as SY from '../sync/layout.js';
import { readName } from '../sync/names.js';
import { DUMP_FORMAT, DUMP_VERSION, type ArenaDump, type DumpFence, type DumpLock, type DumpThread } from './dump.js';
import * as L from './layout.js';
import { threadNameOf } from './ring.js';

/** Longest list a walk follows before it calls the list torn. */
const MAX_LIST = 100_000;

const OP_STATES: Readonly<Record<number, string>> = {
  [DR.OPS_NEW]: 'being submitted',
  [DR.OPS_SUBMITTED]: 'submitted',
  [DR.OPS_RUNNING]: 'running',
  [DR.OPS_FINISHING]: 'finishing',
  [DR.OPS_COUNTED]: 'finishing',
};

const CB_KINDS: Readonly<Record<number, 'function' | 'wake' | 'library'>> = {
  [FL.CBK_FN]: 'function',
  [FL.CBK_WAKE]: 'wake',
  [FL.CBK_SHARED]: 'library',
};

interface Block {
  hw: number;
  size: number;
  type: number;
}

/**
 * Describes everything live in `arena` (see {@link ArenaDump}). Threads: any attached thread.
 * Locking: none taken. Returns plain data (JSON-serialisable); `reason` is recorded in it.
 */
export function describe(arena: Arena, reason?: string): ArenaDump {
  const w = new Walker(arena);
  const threads = w.threads();
  const { fences, timelines, operations } = w.blocksOf();
  const locks = w.locks(fences);
  const fds = w.fds();
  return {
    format: DUMP_FORMAT,
    version: DUMP_VERSION,
    takenAt: new Date().toISOString(),
    pid: process.pid,
    ...(reason ? { reason } : {}),
    arena: {
      bytes: arena.buffer.byteLength,
      used: w.used,
      maxThreads: arena.maxThreads,
      lockKind: arena.lockKind,
      sanitize: arena.sanitize,
      useAfterFree: arena.uafCount,
      tracing: arena.trace.categories,
    },
    threads,
    fences,
    timelines,
    locks,
    fds,
    operations,
    notes: w.notes,
  };
}

/**
 * One walk of an arena: the live blocks (from one heap walk), then each part of the dump in turn.
 * The parts run in order — threads first (who sleeps on what, who holds what from the robust
 * lists), then the blocks, the locks, the fds — because later parts read what earlier ones found.
 */
class Walker {
  readonly notes: string[] = [];
  /** Bytes of the live blocks. */
  used = 0;
  private readonly i32: Int32Array;
  private readonly blocks: Block[] = [];
  private readonly fdTable: number;
  private readonly fdEntries: number;
  private readonly sleepersOf = new Map<string, string[]>(); // fw:gen → thread names
  private readonly acquirersOf = new Map<number, string[]>(); // lock word → thread names
  private readonly heldBy = new Map<number, number>(); // lock word → holder slot (from the robust lists)

  constructor(private readonly arena: Arena) {
    const i32 = (this.i32 = arena.i32);
    this.fdTable = i32[A.H_TABLE];
    this.fdEntries = i32[A.H_TABLE_ENTRIES];
    const walkError = arena.walk((hw, size, state, type) => {
      if (state !== A.STATE_LIVE) return;
      this.blocks.push({ hw, size, type });
      this.used += size;
    });
    if (walkError) this.notes.push(`heap walk stopped early: ${walkError}`);
  }

  /** Name of the thread in slot `s` ("thread slot 3 (gone)" for a free slot). */
  private nameOf(s: number): string {
    const arena = this.arena;
    if (!(s >= 0 && s < arena.maxThreads)) return 'nobody';
    const state = Atomics.load(this.i32, arena.slotWord(s) + A.T_STATE);
    if (state === A.SLOT_FREE || state === A.SLOT_RESERVED) return `thread slot ${s} (gone)`;
    const name = threadNameOf(arena, s);
    return state === A.SLOT_DEAD ? `${name} (dead)` : name;
  }

  private holderOfWord(idx: number): { holder: number; died: boolean } {
    const w = Atomics.load(this.i32, idx);
    return { holder: (w & K.LOCK_OWNER_MASK) - 1, died: (w & K.LOCK_DIED) !== 0 };
  }

  private fenceLabel(fw: number): string {
    const i32 = this.i32;
    return `${i32[fw + FL.F_CONTEXT]}:${i32[fw + FL.F_SEQNO_HI] * 0x100000000 + (i32[fw + FL.F_SEQNO_LO] >>> 0)}`;
  }

  /** The live block holding word `idx` (binary search over the walk), or undefined. */
  private blockOf(idx: number): Block | undefined {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = blocks[mid];
      if (idx < b.hw) hi = mid - 1;
      else if (idx >= b.hw + (b.size >>> 2)) lo = mid + 1;
      else return b;
    }
    return undefined;
  }

  /** What a lock word belongs to, in words a person recognises. */
  private whatIs(idx: number): string {
    const i32 = this.i32;
    if (idx >= this.fdTable && idx < this.fdTable + this.fdEntries * SY.FD_STRIDE) return `fd entry ${Math.floor((idx - this.fdTable) / SY.FD_STRIDE)} lock`;
    const b = this.blockOf(idx);
    if (!b) return `lock word @${idx * 4} in freed memory`;
    const p = b.hw + A.BLOCK_HEADER_WORDS;
    switch (b.type) {
      case A.BlockType.FENCE:
        if (idx === p + FL.F_LOCK) return `inline lock of fence ${this.fenceLabel(p)}`;
        if (idx === p + CT.C_PREV_LOCK) return `chain link lock of fence ${this.fenceLabel(p)}`;
        return `word of fence ${this.fenceLabel(p)}`;
      case A.BlockType.OPERATION:
        return idx === p + DR.OP_LOCK ? `lock of operation ${i32[p + DR.OP_ID]}` : `word of operation ${i32[p + DR.OP_ID]}`;
      case A.BlockType.TIMELINE:
        return `lock of timeline "${readName(this.arena, p + SY.TL_NAME)}"`;
      case A.BlockType.LOCK:
        return `lock ${this.arena.handleOf(b.hw)}`;
      default:
        return `lock word @${idx * 4} in a ${A.BLOCK_TYPE_NAMES[b.type] ?? 'block'} block`;
    }
  }

  /** Threads, and who is blocked where (recorded for the fences and locks described after). */
  threads(): DumpThread[] {
    const threads: DumpThread[] = [];
    const now = Date.now() & 0x7fffffff;
    for (let s = 0; s < this.arena.maxThreads; s++) {
      const b = this.arena.slotWord(s);
      const state = Atomics.load(this.i32, b + A.T_STATE);
      if (state === A.SLOT_LIVE || state === A.SLOT_DEAD) threads.push(this.thread(s, b, state, now));
    }
    return threads;
  }

  private thread(s: number, b: number, state: number, now: number): DumpThread {
    const i32 = this.i32;
    const name = this.nameOf(s);
    const t: DumpThread = {
      slot: s,
      serial: i32[b + A.T_SERIAL],
      threadId: i32[b + A.T_THREAD_ID],
      name,
      state: state === A.SLOT_LIVE ? 'live' : 'dead',
      locksHeld: [],
      inboxQueued: 0,
      dispatching: i32[b + RT.T_DISPATCHING] !== 0,
    };
    const wf = Atomics.load(i32, b + L.T_WAIT_FENCE);
    if (wf !== 0) {
      const gen = i32[b + L.T_WAIT_GEN];
      const live = this.arena.isLive(wf - A.BLOCK_HEADER_WORDS, gen);
      t.waitingOn = {
        fence: live ? this.fenceLabel(wf) : `@${wf * 4} (released)`,
        handle: gen * A.HANDLE_OFFSET_SCALE + ((wf - A.BLOCK_HEADER_WORDS) >>> 1),
        forMs: (now - i32[b + L.T_WAIT_SINCE]) & 0x7fffffff,
      };
      const k = `${wf}:${gen}`;
      (this.sleepersOf.get(k) ?? this.sleepersOf.set(k, []).get(k)!).push(name);
    }
    const wl = Atomics.load(i32, b + L.T_WAIT_LOCK);
    if (wl !== 0) {
      t.acquiring = { lock: wl * 4, what: this.whatIs(wl), holder: this.nameOf(this.holderOfWord(wl).holder) };
      (this.acquirersOf.get(wl) ?? this.acquirersOf.set(wl, []).get(wl)!).push(name);
    }
    const n = Math.min(i32[b + K.T_ROBUST_COUNT], K.ROBUST_CAP);
    for (let j = 0; j < n; j++) {
      const idx = i32[b + K.T_ROBUST + j];
      if (idx > 0 && idx < i32.length && this.holderOfWord(idx).holder === s) {
        t.locksHeld.push({ lock: idx * 4, what: this.whatIs(idx) });
        this.heldBy.set(idx, s);
      }
    }
    let q = 0;
    for (let nw = Atomics.load(i32, b + FL.T_INBOX); nw > 0 && nw < i32.length && q < MAX_LIST; nw = i32[nw + FL.CB_NEXT]) q++;
    t.inboxQueued = q;
    return t;
  }

  /** Fences, timelines, operations; lock blocks' holders join the held locks. */
  blocksOf(): Pick<ArenaDump, 'fences' | 'timelines' | 'operations'> {
    const i32 = this.i32;
    const out: Pick<ArenaDump, 'fences' | 'timelines' | 'operations'> = { fences: [], timelines: [], operations: [] };
    const stub = i32[FL.H_STUB];
    for (const blk of this.blocks) {
      const p = blk.hw + A.BLOCK_HEADER_WORDS;
      try {
        if (blk.type === A.BlockType.FENCE) {
          // Memory reserved by FenceArray.alloc / FenceChain.alloc (or a create between its
          // allocation and its init) is no fence yet.
          if (p !== stub && (i32[p + FL.F_FLAGS] & FL.FLAG_INITIALIZED) !== 0) out.fences.push(this.fence(p, blk.hw));
        } else if (blk.type === A.BlockType.TIMELINE) {
          out.timelines.push(this.timeline(p, blk.hw));
        } else if (blk.type === A.BlockType.OPERATION) {
          out.operations.push(this.operation(p, blk.hw));
        } else if (blk.type === A.BlockType.LOCK) {
          const { holder } = this.holderOfWord(p);
          if (holder >= 0 && !this.heldBy.has(p)) this.heldBy.set(p, holder);
        }
      } catch (e) {
        this.notes.push(`${A.BLOCK_TYPE_NAMES[blk.type]} block @${blk.hw * 4}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return out;
  }

  private timeline(p: number, hw: number): ArenaDump['timelines'][number] {
    const i32 = this.i32;
    const points: DumpTimelinePoint[] = [];
    let guard = 0;
    for (let pt = i32[p + SY.TL_HEAD]; pt > 0 && pt < i32.length && guard++ < MAX_LIST; pt = i32[pt + SY.PT_NEXT]) {
      points.push({ seqno: i32[pt + FL.F_SEQNO_LO] >>> 0, state: this.stateOf(pt).state, refcount: Atomics.load(i32, pt + FL.F_REFCOUNT) });
    }
    return {
      handle: this.arena.handleOf(hw),
      name: readName(this.arena, p + SY.TL_NAME),
      context: i32[p + SY.TL_CONTEXT],
      value: Atomics.load(i32, p + SY.TL_VALUE) >>> 0,
      closed: i32[p + SY.TL_CLOSED] !== 0,
      points,
    };
  }

  private operation(p: number, hw: number): ArenaDump['operations'][number] {
    const i32 = this.i32;
    const st = Atomics.load(i32, p + DR.OP_STATE);
    const fw = i32[p + DR.OP_FENCE];
    return {
      handle: this.arena.handleOf(hw),
      id: i32[p + DR.OP_ID],
      state: OP_STATES[st & ((1 << DR.OPS_GEN_SHIFT) - 1)] ?? 'ended',
      fence: fw > 0 && fw < i32.length ? this.fenceLabel(fw) : 'none yet',
      owner: this.nameOf(i32[p + DR.OP_OWNER]),
    };
  }

  /** Held locks: the robust lists, lock blocks, and inline fence locks; then the ones only waited for. */
  locks(fences: DumpFence[]): DumpLock[] {
    const locks: DumpLock[] = [];
    const waitingFor = (idx: number) => this.acquirersOf.get(idx) ?? [];
    for (const [idx, holder] of this.heldBy) {
      const { died } = this.holderOfWord(idx);
      locks.push({ lock: idx * 4, what: this.whatIs(idx), holder: this.nameOf(holder), ownerDied: died, waiting: waitingFor(idx) });
    }
    for (const f of fences) {
      if (f.lock.mode !== 'inline' || f.lock.holder === null) continue;
      const idx = f.lock.word >>> 2;
      locks.push({ lock: f.lock.word, what: this.whatIs(idx), holder: f.lock.holder, ownerDied: f.lock.ownerDied, waiting: waitingFor(idx) });
    }
    // Locks somebody waits for that the lists above do not show as held (a dangling borrowed lock, a word held by a dead thread).
    for (const [idx, waiting] of this.acquirersOf) {
      if (locks.some((l) => l.lock === idx * 4)) continue;
      const { holder, died } = this.holderOfWord(idx);
      locks.push({ lock: idx * 4, what: this.whatIs(idx), holder: holder >= 0 ? this.nameOf(holder) : 'nobody (the word does not name a holder)', ownerDied: died, waiting });
    }
    return locks.sort((a, b) => a.lock - b.lock);
  }

  /** Sync-file fds. */
  fds(): ArenaDump['fds'] {
    const i32 = this.i32;
    const fds: ArenaDump['fds'] = [];
    for (let e = 0; e < this.fdEntries; e++) {
      const w = this.fdTable + e * SY.FD_STRIDE;
      const st = Atomics.load(i32, w + SY.FD_STATE);
      if ((st & SY.FDS_STATE_MASK) !== SY.FDS_LIVE) continue;
      const fw = i32[w + SY.FD_FENCE];
      if (fw === 0) continue;
      const nameW = i32[w + SY.FD_NAME];
      fds.push({
        fd: ((st >>> SY.FDS_GEN_SHIFT) & SY.FDS_GEN_MASK) * SY.FD_INDEX_SCALE + e,
        name: nameW ? readName(this.arena, nameW) : '',
        fence: this.fenceLabel(fw),
        status: this.stateOf(fw).status,
        owner: this.nameOf(i32[w + SY.FD_OWNER] - 1), // slot + 1
      });
    }
    return fds;
  }

  private stateOf(fw: number): { state: DumpFence['state']; status: number } {
    const flags = Atomics.load(this.i32, fw + FL.F_FLAGS);
    if (!(flags & FL.FLAG_SIGNALED)) return { state: 'pending', status: 0 };
    const err = this.i32[fw + FL.F_ERROR];
    return err ? { state: 'error', status: err } : { state: 'signaled', status: 1 };
  }

  /** The ops' driver and timeline names of a pending fence (the "detached" names once signaled). */
  private namesOf(fw: number, pending: boolean): { driver: string; timeline: string } {
    if (!pending) return { driver: 'detached-driver', timeline: 'signaled-timeline' };
    const opsId = this.i32[fw + FL.F_OPS];
    const ops = findOps(opsId);
    const view = fenceView(this.arena, fw);
    try {
      return ops
        ? { driver: ops.table.getDriverName(view), timeline: ops.table.getTimelineName(view) }
        : { driver: `unregistered ops ${opsId >>> 0}`, timeline: '?' };
    } catch (e) {
      return { driver: ops?.name ?? '?', timeline: `(names threw: ${e instanceof Error ? e.message : String(e)})` };
    }
  }

  private fence(fw: number, hw: number): DumpFence {
    const i32 = this.i32;
    const flags = Atomics.load(i32, fw + FL.F_FLAGS);
    const inline = (flags & FL.FLAG_INLINE_LOCK) !== 0;
    const lockIdx = inline ? fw + FL.F_LOCK : i32[fw + FL.F_LOCK];
    const gen = i32[hw + A.B_GEN] & A.GEN_MASK;
    const { state, status } = this.stateOf(fw);
    const { driver, timeline } = this.namesOf(fw, state === 'pending');
    // A borrowed lock word may sit in freed memory: read it only while its lender is live.
    const lenderHw = i32[fw + FL.F_LENDER];
    const dangling = !inline && !this.arena.isLive(lenderHw, i32[fw + FL.F_LENDER_GEN]);
    const word = dangling ? { holder: -1, died: false } : this.holderOfWord(lockIdx);
    const callbacks: DumpFence['callbacks'] = [];
    let guard = 0;
    for (let nw = i32[fw + FL.F_CB_HEAD]; nw > 0 && nw < i32.length && guard++ < MAX_LIST; nw = i32[nw + FL.CB_NEXT])
      callbacks.push({ owner: this.nameOf(i32[nw + FL.CB_OWNER]), kind: CB_KINDS[i32[nw + FL.CB_KIND]] ?? 'function' });
    if (guard >= MAX_LIST) this.notes.push(`fence ${this.fenceLabel(fw)}: callback list longer than ${MAX_LIST} (torn?)`);
    return {
      handle: gen * A.HANDLE_OFFSET_SCALE + (hw >>> 1),
      label: this.fenceLabel(fw),
      context: i32[fw + FL.F_CONTEXT],
      seqno: i32[fw + FL.F_SEQNO_HI] * 0x100000000 + (i32[fw + FL.F_SEQNO_LO] >>> 0),
      ops: findOps(i32[fw + FL.F_OPS])?.name ?? `unregistered ops ${i32[fw + FL.F_OPS] >>> 0}`,
      driver,
      timeline,
      state,
      status,
      ...(status < 0 ? { error: errnoName(status) } : {}),
      refcount: Atomics.load(i32, fw + FL.F_REFCOUNT),
      lock: {
        mode: inline ? 'inline' : 'borrowed',
        word: lockIdx * 4,
        holder: word.holder >= 0 ? this.nameOf(word.holder) : null,
        ownerDied: word.died,
        ...(inline ? {} : { lender: dangling ? `a freed block @${lenderHw * 4}` : this.whatIs(lockIdx), dangling }),
      },
      waiters: { sleeping: this.sleepersOf.get(`${fw}:${gen}`) ?? [], flagged: (flags & FL.FLAG_WAITERS) !== 0 },
      callbacks,
      signalingEnabled: (flags & FL.FLAG_ENABLE_SIGNAL) !== 0,
      createdBy: this.nameOf(threadField(i32[hw + A.B_TAG] >>> A.TAG_ALLOC_SHIFT)),
    };
  }
}

type DumpTimelinePoint = ArenaDump['timelines'][number]['points'][number];
