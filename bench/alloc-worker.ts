/**
 * Crew worker of bench/alloc.bench.ts (see bench/crew.ts for the cell protocol): allocates and
 * frees one 64-byte block at a time, as fast as it can until STOP, with one of the allocators, after
 * allocating `live` blocks it keeps for the cell.
 */
import { readFileSync } from 'node:fs';
import { MemPool } from '@thi.ng/malloc';
import { Arena, BlockType } from '../src/index.js';
import { PAYLOAD_BYTES, type AllocCellMessage, type AllocResult } from './alloc-protocol.js';
import { serveCells, type CellControl, type CrewData } from './crew.js';
import { GlobalLockList } from './global-lock-list.js';

/** Pairs between two looks at STOP. */
const BATCH = 64;
/** Batches each cell runs before it starts (see timed()). */
const WARMUP = 300;
const BLOCK_BYTES = PAYLOAD_BYTES + 8;

const crew: CrewData<{ buffer: SharedArrayBuffer }> = serveCells<AllocCellMessage, AllocResult, { buffer: SharedArrayBuffer }>(
  (cell, ctl) => {
    switch (cell.impl) {
      case 'arena alloc+free (public, zeroed)':
        return publicLoop(cell, ctl);
      case 'arena allocBlock+freeBlock':
        return blockLoop(cell, ctl);
      case '@thi.ng/malloc (a pool per thread)':
        return thiLoop(cell, ctl);
      case 'global-lock free list':
        return listLoop(cell, ctl);
    }
  },
  () => arena.detach(),
);
const arena = Arena.attach(crew.data.buffer);

/**
 * Runs `batch` (BATCH pairs) until STOP and returns the pairs and the window they were made in
 * (from the start barrier to seeing STOP: the kept blocks' set-up and release are outside it).
 * Before the cell starts it runs it WARMUP times, so that the cell measures optimised code, not
 * the JIT compiling it.
 */
function timed(ctl: CellControl, batch: () => number): AllocResult {
  let sink = 0;
  for (let i = 0; i < WARMUP; i++) sink += batch();
  let count = 0;
  ctl.ready();
  const cpu0 = onCpuNs();
  const startNs = Number(process.hrtime.bigint());
  while (!ctl.stopped()) {
    sink += batch();
    count += BATCH;
  }
  const endNs = Number(process.hrtime.bigint());
  const cpu1 = onCpuNs();
  return { count, startNs, endNs, onCpuNs: cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0, sink };
}

/**
 * This thread's time on a CPU so far, ns (the first field of /proc/thread-self/schedstat), or −1
 * where there is no such file. Beside the window's wall time it tells a worker that had a core for
 * the whole window from one that shared it with another process (or with the other worker).
 */
function onCpuNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
  } catch {
    return -1;
  }
}

function publicLoop(cell: AllocCellMessage, ctl: CellControl): AllocResult {
  const kept = Array.from({ length: cell.live }, () => arena.alloc(PAYLOAD_BYTES));
  const r = timed(ctl, () => {
    for (let k = 0; k < BATCH; k++) arena.free(arena.alloc(PAYLOAD_BYTES));
    return 0;
  });
  for (const ref of kept) arena.free(ref);
  return r;
}

function blockLoop(cell: AllocCellMessage, ctl: CellControl): AllocResult {
  const kept = Array.from({ length: cell.live }, () => arena.allocBlock(BLOCK_BYTES, BlockType.RAW));
  const r = timed(ctl, () => {
    for (let k = 0; k < BATCH; k++) arena.freeBlock(arena.allocBlock(BLOCK_BYTES, BlockType.RAW));
    return 0;
  });
  for (const hw of kept) arena.freeBlock(hw);
  return r;
}

/** @thi.ng/malloc is single-threaded: each worker gets a pool of its own (no sharing, no lock). */
function thiLoop(cell: AllocCellMessage, ctl: CellControl): AllocResult {
  const pool = new MemPool({ size: 8 << 20 });
  for (let i = 0; i < cell.live; i++) pool.malloc(PAYLOAD_BYTES);
  return timed(ctl, () => {
    let sink = 0;
    for (let k = 0; k < BATCH; k++) {
      const p = pool.malloc(PAYLOAD_BYTES);
      sink += p;
      pool.free(p);
    }
    return sink;
  });
}

function listLoop(cell: AllocCellMessage, ctl: CellControl): AllocResult {
  const list = new GlobalLockList(cell.list, arena.me);
  const kept = Array.from({ length: cell.live }, () => list.alloc());
  if (kept.includes(0)) throw new Error('global-lock free list: out of blocks for the live set');
  const r = timed(ctl, () => {
    for (let k = 0; k < BATCH; k++) list.free(list.alloc());
    return 0;
  });
  for (const b of kept) list.free(b);
  return r;
}
