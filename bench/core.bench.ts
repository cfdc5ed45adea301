/**
 * Single-thread costs of the core, each as a ratio to a baseline measured in the same run:
 * lock pairs per algorithm vs a raw TAS (exchange + store), fence lock inline vs raw and vs
 * borrowed, fence create+signal+put, alloc+free vs @thi.ng/malloc (empty and with 1,000 live
 * blocks), and the sanitizer's overhead. Run: `npm run bench`.
 */
import { MemPool } from '@thi.ng/malloc';
import { Arena, Fence, SpinLock } from '../src/index.js';
import { measure, printTable, row, writeResults, type Row } from './util.js';

const N = 1000;

async function main(): Promise<void> {
  const arena = Arena.create({ bytes: 64 << 20 });
  const san = Arena.create({ bytes: 64 << 20, sanitize: true });

  // Raw baseline: a test-and-set word driven by exchange + store, as bare as it gets.
  const raw = new Int32Array(new SharedArrayBuffer(64));
  const rawPair = () => {
    for (let i = 0; i < N; i++) {
      while (Atomics.exchange(raw, 0, 1) !== 0);
      raw[1]++;
      Atomics.store(raw, 0, 0);
    }
  };
  const locks = (['tas', 'ttas', 'ticket', 'futex'] as const).map((k) => [k, SpinLock.create(arena, k)] as const);

  const ctx = Fence.contextAlloc(arena);
  const inline = Fence.create(arena, { context: ctx, seqno: 1 });
  const opRef = arena.alloc(64);
  const borrowed = Fence.create(arena, { context: ctx, seqno: 2, lock: SpinLock.at(arena, opRef, 0) });
  const sanCtx = Fence.contextAlloc(san);
  const sanInline = Fence.create(san, { context: sanCtx, seqno: 1 });
  const sanOp = san.alloc(64);
  const sanBorrowed = Fence.create(san, { context: sanCtx, seqno: 2, lock: SpinLock.at(san, sanOp, 0) });
  const fenceLockLoop = (f: Fence) => () => {
    for (let i = 0; i < N; i++) {
      f.lock();
      f.unlock();
    }
  };
  let seq = 10;
  const lifecycle = (a: Arena, c: number) => () => {
    for (let i = 0; i < N; i++) {
      const f = Fence.create(a, { context: c, seqno: seq++ });
      f.signal();
      f.put();
    }
  };

  const pool = new MemPool({ size: 64 << 20 });
  const poolLive = new MemPool({ size: 64 << 20 });
  const arenaLive = Arena.create({ bytes: 64 << 20 });
  const keep: number[] = [];
  for (let i = 0; i < 1000; i++) {
    poolLive.malloc(64);
    keep.push(arenaLive.alloc(64));
  }
  const thiPair = (p: MemPool) => () => {
    for (let i = 0; i < N; i++) p.free(p.malloc(56));
  };
  // Same request as thi.ng's: 56 payload bytes + our 8-byte header = one 64-byte block.
  const arenaPair = (a: Arena) => () => {
    for (let i = 0; i < N; i++) a.freeBlock(a.allocBlock(64, 1));
  };
  const arenaPublic = (a: Arena) => () => {
    for (let i = 0; i < N; i++) a.free(a.alloc(56));
  };

  const results = await measure(
    [
      ['raw TAS exchange+store', rawPair],
      ...locks.map(([k, l]) => [`SpinLock ${k} lock+unlock`, () => { for (let i = 0; i < N; i++) { l.lock(); l.unlock(); } }] as [string, () => void]),
      ['fence lock+unlock inline', fenceLockLoop(inline)],
      ['fence lock+unlock borrowed', fenceLockLoop(borrowed)],
      ['fence lock+unlock inline (sanitize)', fenceLockLoop(sanInline)],
      ['fence lock+unlock borrowed (sanitize)', fenceLockLoop(sanBorrowed)],
      ['fence create+signal+put', lifecycle(arena, ctx)],
      ['fence create+signal+put (sanitize)', lifecycle(san, sanCtx)],
      ['@thi.ng/malloc alloc+free 64 B', thiPair(pool)],
      ['arena allocBlock+freeBlock 64 B', arenaPair(arena)],
      ['arena alloc+free 64 B (public, zeroed)', arenaPublic(arena)],
      ['@thi.ng/malloc alloc+free, 1k live', thiPair(poolLive)],
      ['arena allocBlock+freeBlock, 1k live', arenaPair(arenaLive)],
    ],
    N,
  );

  const rows: Row[] = [
    row(results, 'raw TAS exchange+store'),
    ...locks.map(([k]) => row(results, `SpinLock ${k} lock+unlock`, 'raw TAS exchange+store')),
    row(results, 'fence lock+unlock inline', 'raw TAS exchange+store', { max: 1.2 }),
    row(results, 'fence lock+unlock inline', 'fence lock+unlock borrowed', { max: 1.05 }),
    row(results, 'fence lock+unlock inline (sanitize)', 'fence lock+unlock inline', { max: 2 }),
    row(results, 'fence lock+unlock borrowed (sanitize)', 'fence lock+unlock borrowed', { max: 2 }),
    row(results, 'fence create+signal+put', undefined, { minOpsPerSec: 5e6 }),
    row(results, 'fence create+signal+put (sanitize)', 'fence create+signal+put', { max: 2 }),
    row(results, '@thi.ng/malloc alloc+free 64 B'),
    row(results, 'arena allocBlock+freeBlock 64 B', '@thi.ng/malloc alloc+free 64 B', { max: 1.0 }),
    row(results, 'arena alloc+free 64 B (public, zeroed)', '@thi.ng/malloc alloc+free 64 B'),
    row(results, '@thi.ng/malloc alloc+free, 1k live'),
    row(results, 'arena allocBlock+freeBlock, 1k live', '@thi.ng/malloc alloc+free, 1k live', { max: 1.0 }),
    row(results, 'arena allocBlock+freeBlock, 1k live', 'arena allocBlock+freeBlock 64 B'),
  ];
  printTable('fencelab core — single thread (ns per operation; ratio = task / baseline, same run)', rows);
  console.log(`\nresults: ${writeResults('core', { date: new Date().toISOString(), node: process.version, rows })}`);

  for (const f of [inline, borrowed, sanInline, sanBorrowed]) f.put();
  for (const l of locks) l[1].free();
  arena.free(opRef);
  san.free(sanOp);
  for (const r of keep) arenaLive.free(r);
}

await main();
