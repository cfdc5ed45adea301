/**
 * Fence chain costs, single thread, as ratios to a plain fence create+signal+put measured in the
 * same run: append a link (leaf + link, released again: amortised), findSeqno on a 4,096-link
 * chain (per call and per link walked), the garbage-collecting walk per link, and an armed chain
 * signaled backward (signal + re-arm per link, the kernel's wait_backward). Run:
 * `npx tsc -p . && node dist/bench/chain.bench.js` (the options every suite takes: bench/util.ts;
 * --quick measures a seventh of the time (bench/util.ts's timing) and 5 chains instead of 15 per walk). JSON →
 * bench/results/chain.json.
 */
import { Arena, Fence, FenceChain } from '../src/index.js';
import { finishSuite, measure, row, runInfo, suiteArgs, timing, type Row } from './util.js';

const args = suiteArgs('chain');
const N = 1000;
const CHAIN = 4096;
/** Chains built, walked and released per walk figure (the median is kept). */
const WALK_ROUNDS = args.quick ? 5 : 15;

/** Builds a CHAIN-link chain over fresh leaves; returns the tail and the leaves (caller puts them). */
function build(arena: Arena, ctx: number): { tail: Fence; leaves: Fence[] } {
  let tail: Fence | null = null;
  const leaves: Fence[] = [];
  for (let i = 0; i < CHAIN; i++) {
    const f = Fence.create(arena, { context: ctx, seqno: i + 1 });
    leaves.push(f);
    tail = FenceChain.create(arena, tail, f.get(), i + 1);
  }
  return { tail: tail!, leaves };
}

/** Median over `rounds` of ns per link for `timed`, with untimed setup and teardown each round. */
function perLink(rounds: number, setup: () => Fence[], timed: (fs: Fence[]) => void, teardown: (fs: Fence[]) => void): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const fs = setup();
    const t0 = process.hrtime.bigint();
    timed(fs);
    const t1 = process.hrtime.bigint();
    teardown(fs);
    samples.push(Number(t1 - t0) / CHAIN);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >>> 1];
}

async function main(): Promise<void> {
  const arena = Arena.create({ bytes: 128 << 20 });
  const ctx = Fence.contextAlloc(arena);
  let seq = 1;

  const lifecycle = () => {
    for (let i = 0; i < N; i++) {
      const f = Fence.create(arena, { context: ctx, seqno: seq++ });
      f.signal();
      f.put();
    }
  };
  const append = () => {
    let tail: Fence | null = null;
    for (let i = 0; i < N; i++) tail = FenceChain.create(arena, tail, Fence.create(arena, { context: ctx, seqno: i + 1 }), i + 1);
    tail!.put(); // iterative release of the N links and leaves
  };

  // findSeqno on an unsignaled chain: walks from the tail down to the link of the seqno.
  const fixed = build(arena, ctx);
  const FIND = 64;
  const seqnos = Array.from({ length: FIND }, (_, i) => 1 + ((i * 2654435761) >>> 0) % CHAIN);
  const walked = seqnos.reduce((s, x) => s + (CHAIN - x + 1), 0) / FIND;
  const find = () => {
    for (let i = 0; i < FIND; i++) FenceChain.findSeqno(fixed.tail, seqnos[i])!.put();
  };

  const results = await measure(
    [
      ['fence create+signal+put', lifecycle],
      ['chain append (leaf + link, released), per link', append],
    ],
    N,
    timing(args.quick),
  );
  const findNs = (await measure([['chain findSeqno (4,096 links, random seqno)', find]], FIND, timing(args.quick))).get(
    'chain findSeqno (4,096 links, random seqno)',
  )!;
  results.set('chain findSeqno (4,096 links, random seqno)', findNs);
  results.set('chain findSeqno, per link walked', findNs / walked);

  // GC walk: every leaf signaled, one isSignaled() on the tail walks and collects all links.
  const gc = perLink(
    WALK_ROUNDS,
    () => {
      const { tail, leaves } = build(arena, ctx);
      for (const f of leaves) f.signal();
      return [tail, ...leaves];
    },
    (fs) => {
      if (!fs[0].isSignaled()) throw new Error('chain should be signaled');
    },
    (fs) => fs.forEach((f) => f.put()),
  );
  results.set('chain GC walk (all signaled), per link', gc);

  // wait_backward: armed chain, leaves signaled newest first: each signal re-arms one link down.
  const backward = perLink(
    WALK_ROUNDS,
    () => {
      const { tail, leaves } = build(arena, ctx);
      tail.enableSignaling();
      return [tail, ...leaves];
    },
    (fs) => {
      for (let i = fs.length - 1; i >= 1; i--) fs[i].signal();
      if (!fs[0].testSignaledFlag()) throw new Error('chain should be signaled');
    },
    (fs) => fs.forEach((f) => f.put()),
  );
  results.set('armed chain signaled backward (signal + re-arm), per link', backward);

  fixed.tail.put();
  fixed.leaves.forEach((f) => f.put());
  const check = arena.check();
  if (!check.ok || check.leakedBytes !== 0) throw new Error(`bench leaked: ${JSON.stringify(check.leaks.slice(0, 5))}`);

  const base = 'fence create+signal+put';
  const rows: Row[] = [
    row(results, base),
    row(results, 'chain append (leaf + link, released), per link', base),
    row(results, 'chain findSeqno (4,096 links, random seqno)', base),
    row(results, 'chain findSeqno, per link walked', base),
    row(results, 'chain GC walk (all signaled), per link', base),
    row(results, 'armed chain signaled backward (signal + re-arm), per link', base),
  ];
  console.log(`chain: findSeqno walks ${walked.toFixed(0)} links on average`);
  finishSuite('chain', args, { ...runInfo(args), chainLength: CHAIN, rows });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
