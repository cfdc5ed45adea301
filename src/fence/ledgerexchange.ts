/**
 * A state transition and the ledger records it makes necessary, in one run: for an object whose
 * ownership passes to the calling thread by a compare-exchange (a pool's job taken from QUEUED to
 * RUNNING: src/runtime/finish.ts startJob), so that no terminate() can fall between the exchange
 * and the records (see src/fence/drop.ts on where it lands, src/fence/ledger.ts on the ledger).
 */
import type { Arena } from '../arena/arena.js';
import * as A from '../arena/layout.js';
import * as L from './layout.js';
import { ledgerReserve } from './ledger.js';

const { LG_COUNT, LG_ENTRIES, LG_STRIDE, LE_KIND, LE_VALUE, LE_GEN } = L;
const { BLOCK_HEADER_WORDS } = A;

/**
 * Compare-exchanges `i32[word]` from `expect` to `replace` and, when it moved, records the object at
 * payload word `value` under each kind packed in `kinds` (up to three, 6 bits each, low first; 0
 * ends the list) and stores `atValue` at word `at` (0: none), all in the exchange's run: room is made
 * before, the entries' generation read before, and only plain writes follow the exchange (no call,
 * no loop), so a thread terminated at any point either did not move the word or holds every record.
 * Returns whether the word moved. Threads: the recording thread. Throws ENOMEM (nothing moved).
 */
export function ledgerExchangeRecord(arena: Arena, word: number, expect: number, replace: number, value: number, kinds: number, at: number, atValue: number): boolean {
  const k1 = kinds & 63;
  const k2 = (kinds >>> 6) & 63;
  const k3 = (kinds >>> 12) & 63;
  const lw = ledgerReserve(arena, k3 !== 0 ? 3 : k2 !== 0 ? 2 : 1);
  const i32 = arena.i32;
  const gen = i32[value - BLOCK_HEADER_WORDS + A.B_GEN] & A.GEN_MASK;
  let n = i32[lw + LG_COUNT];
  if (Atomics.compareExchange(i32, word, expect, replace) !== expect) return false;
  let e = lw + LG_ENTRIES + n * LG_STRIDE;
  i32[e + LE_KIND] = k1;
  i32[e + LE_VALUE] = value;
  i32[e + LE_GEN] = gen;
  n++;
  if (k2 !== 0) {
    e += LG_STRIDE;
    i32[e + LE_KIND] = k2;
    i32[e + LE_VALUE] = value;
    i32[e + LE_GEN] = gen;
    n++;
  }
  if (k3 !== 0) {
    e += LG_STRIDE;
    i32[e + LE_KIND] = k3;
    i32[e + LE_VALUE] = value;
    i32[e + LE_GEN] = gen;
    n++;
  }
  i32[lw + LG_COUNT] = n;
  if (at !== 0) i32[at] = atValue;
  return true;
}
