/**
 * Worker fixture: hammers the allocator. Random alloc/free of mixed sizes, every block stamped with
 * (worker, serial) in all its payload words and verified before it is freed (two owners of one block
 * would overwrite each other's stamp), plus a hand-over of blocks to the peer worker through a
 * single-producer ring so that frees also happen on a thread other than the allocating one.
 *
 * workerData: { buffer, id (1|2), iterations, seed, outRing, inRing } — rings are SharedArrayBuffers
 * laid out as [head, tail, producerDone] Int32 words followed by RING_CAP Float64 handle slots.
 * Posts { type: 'done', allocs, frees, corrupt, handedOver, received } after detaching.
 */
import { seededInt } from './seeded.js';
import { parentPort, workerData } from 'node:worker_threads';
import { Arena } from '../src/index.js';

const RING_CAP = 256;
const HEAD = 0;
const TAIL = 1;
const DONE = 2;
const SLOTS_BYTE_OFFSET = 16;
const SIZES = [4, 8, 24, 56, 120, 250, 500, 1000, 3000];
const MAX_LIVE = 64;

interface Ring {
  ctl: Int32Array;
  slots: Float64Array;
}
function ring(buf: SharedArrayBuffer): Ring {
  return { ctl: new Int32Array(buf, 0, 4), slots: new Float64Array(buf, SLOTS_BYTE_OFFSET, RING_CAP) };
}

const { buffer, id, iterations, seed, outRing, inRing } = workerData as {
  buffer: SharedArrayBuffer;
  id: number;
  iterations: number;
  seed: number;
  outRing: SharedArrayBuffer;
  inRing: SharedArrayBuffer;
};

const rand = seededInt(seed);

const arena = Arena.attach(buffer);
const out = ring(outRing);
const inbox = ring(inRing);
let allocs = 0;
let frees = 0;
let corrupt = 0;
let handedOver = 0;
let received = 0;
let serial = 0;

function stamp(ref: number): void {
  const hw = arena.resolve(ref, -1, 'block');
  const words = arena.payloadBytes(hw) >>> 2;
  const s = (id << 24) | (++serial & 0xffffff);
  arena.i32.fill(s, hw + 2, hw + 2 + words);
  // Word 0 keeps the stamp, word 1 its complement: a torn or foreign write shows up.
  if (words > 1) arena.i32[hw + 3] = ~s;
}

function verifyAndFree(ref: number): void {
  const hw = arena.resolve(ref, -1, 'block');
  const words = arena.payloadBytes(hw) >>> 2;
  const i32 = arena.i32;
  const s = i32[hw + 2];
  let ok = words <= 1 || i32[hw + 3] === ~s;
  for (let w = 2; ok && w < words; w++) if (i32[hw + 2 + w] !== s) ok = false;
  if (!ok) corrupt++;
  arena.free(ref);
  frees++;
}

function drainInbox(): void {
  const ctl = inbox.ctl;
  let head = ctl[HEAD];
  const tail = Atomics.load(ctl, TAIL);
  while (head !== tail) {
    verifyAndFree(inbox.slots[head % RING_CAP]);
    received++;
    head++;
  }
  Atomics.store(ctl, HEAD, head);
}

function handOver(ref: number): boolean {
  const ctl = out.ctl;
  const tail = ctl[TAIL];
  if (tail - Atomics.load(ctl, HEAD) >= RING_CAP) return false;
  out.slots[tail % RING_CAP] = ref;
  // Publish the slot before the tail: the consumer reads the slot only after it sees the tail.
  Atomics.store(ctl, TAIL, tail + 1);
  return true;
}

try {
  const live: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const r = rand(100);
    if (live.length < MAX_LIVE && (r < 55 || live.length === 0)) {
      const ref = arena.alloc(SIZES[rand(SIZES.length)]);
      allocs++;
      stamp(ref);
      live.push(ref);
    } else {
      const k = rand(live.length);
      const ref = live[k];
      live[k] = live[live.length - 1];
      live.pop();
      if (r >= 90 && handOver(ref)) handedOver++;
      else verifyAndFree(ref);
    }
    if ((i & 63) === 0) drainInbox();
  }
  for (const ref of live) verifyAndFree(ref);
  Atomics.store(out.ctl, DONE, 1);
  // Bounded: the peer's remaining hand-overs, then we are done.
  const deadline = Date.now() + 20_000;
  while (!(Atomics.load(inbox.ctl, DONE) === 1 && Atomics.load(inbox.ctl, TAIL) === inbox.ctl[HEAD])) {
    drainInbox();
    if (Date.now() > deadline) throw new Error('peer never finished handing blocks over');
    Atomics.wait(inbox.ctl, 3, 0, 1);
  }
  drainInbox();
  arena.detach();
  parentPort!.postMessage({ type: 'done', allocs, frees, corrupt, handedOver, received });
} catch (e) {
  parentPort!.postMessage({ type: 'error', message: String((e as Error)?.stack ?? e), code: (e as { code?: string }).code });
}
