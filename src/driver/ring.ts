/**
 * The driver's command ring (the ioctl channel): a bounded MPMC queue in the driver block, Vyukov
 * style — a sequence word per entry says whose turn it is — so any thread, any worker and no
 * MessagePort, can post a command and any exporter can take it. Producers and consumers each
 * claim a position with one CAS on the tail or head word; the entry's sequence store publishes it
 * (to the consumer) or hands it back (to the producers). The bell word wakes sleepers.
 */
import { handleGen } from '../arena/handles.js';
import * as A from '../arena/layout.js';
import { Errors } from '../errors.js';
import * as L from './layout.js';

const { DRV_RING_HEAD, DRV_RING_TAIL, DRV_RING_BELL, DRV_RING, RING_STRIDE, RE_SEQ, RE_CMD, RE_OP_LO, RE_OP_HI } = L;

/** Sequence words of a new ring of `cap` entries (a power of two) in driver block `dw`: entry k waits for position k. */
export function ringInit(i32: Int32Array, dw: number, cap: number): void {
  for (let k = 0; k < cap; k++) i32[dw + DRV_RING + k * RING_STRIDE + RE_SEQ] = k;
}

/** Bumps the driver bell and wakes everyone sleeping on it (a command was posted, or an operation ended). */
export function ringBell(i32: Int32Array, dw: number): void {
  Atomics.add(i32, dw + DRV_RING_BELL, 1);
  Atomics.notify(i32, dw + DRV_RING_BELL);
}

/**
 * The position to retry at after a lost race: the head or tail word at `w` again. An entry whose
 * sequence is ahead of our position (`dif` > 0) means the word moved past it before the entry was
 * stored (the CAS comes first), so a word that still reads `pos` was rewritten: a corrupted ring
 * would send the loop round forever, so it throws ENOTRECOVERABLE instead.
 */
function nextPos(i32: Int32Array, w: number, pos: number, dif: number): number {
  const now = Atomics.load(i32, w);
  if (dif > 0 && now === pos) throw Errors.corruptArena(`driver ring entry ${pos} is ahead of its position word @${w * 4}`);
  return now;
}

/**
 * Posts command `cmd` for operation handle `opHandle` to the ring of driver block `dw` (`mask` =
 * entries - 1) and rings the bell. Threads: any; never blocks. Returns false when the ring is full.
 */
export function ringPost(i32: Int32Array, dw: number, mask: number, cmd: number, opHandle: number): boolean {
  let pos = Atomics.load(i32, dw + DRV_RING_TAIL);
  for (;;) {
    const e = dw + DRV_RING + (pos & mask) * RING_STRIDE;
    const dif = (Atomics.load(i32, e + RE_SEQ) - pos) | 0;
    if (dif < 0) return false; // the entry still holds a command from a lap ago: full
    if (dif === 0 && Atomics.compareExchange(i32, dw + DRV_RING_TAIL, pos, (pos + 1) | 0) === pos) {
      i32[e + RE_CMD] = cmd;
      i32[e + RE_OP_LO] = opHandle & A.HANDLE_OFFSET_MASK;
      i32[e + RE_OP_HI] = handleGen(opHandle);
      // The sequence store publishes the entry: the consumer reads the fields only after it.
      Atomics.store(i32, e + RE_SEQ, (pos + 1) | 0);
      ringBell(i32, dw);
      return true;
    }
    pos = nextPos(i32, dw + DRV_RING_TAIL, pos, dif);
  }
}

/**
 * Takes the oldest command from the ring: `out` receives [command, operation handle low part
 * (block offset / 2), generation]. Threads: any number of consumers. Returns false when empty.
 */
export function ringTake(i32: Int32Array, dw: number, mask: number, out: Int32Array): boolean {
  let pos = Atomics.load(i32, dw + DRV_RING_HEAD);
  for (;;) {
    const e = dw + DRV_RING + (pos & mask) * RING_STRIDE;
    const dif = (Atomics.load(i32, e + RE_SEQ) - ((pos + 1) | 0)) | 0;
    if (dif < 0) return false; // not published yet: empty
    if (dif === 0 && Atomics.compareExchange(i32, dw + DRV_RING_HEAD, pos, (pos + 1) | 0) === pos) {
      out[0] = i32[e + RE_CMD];
      out[1] = i32[e + RE_OP_LO];
      out[2] = i32[e + RE_OP_HI];
      // Hand the entry back to the producers of the next lap, after reading it.
      Atomics.store(i32, e + RE_SEQ, (pos + mask + 1) | 0);
      return true;
    }
    pos = nextPos(i32, dw + DRV_RING_HEAD, pos, dif);
  }
}
