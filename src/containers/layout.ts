/**
 * The containers' shared-memory structs: a fence array and a fence chain link are fence blocks
 * with words of their own after the fence's (relative to the fence payload word).
 */
import { defineStruct } from '../arena/struct.js';
import { FENCE_WORDS } from '../fence/layout.js';

/** Fence array (kernel dma_fence_array). */
export const { NUM: A_NUM, PENDING: A_PENDING, SLOTS: A_SLOTS, MODE: A_MODE, END: ARRAY_END } = defineStruct(
  'fence array',
  {
    NUM: 1, // number of child fences
    PENDING: 1, // children still to signal (signal-on-any: 1); goes ≤ 0 when done
    SLOTS: 1, // payload word of the SLOTS block: one child payload word per entry
    MODE: 1, // ARRAY_SIGNAL_ANY
  },
  { base: FENCE_WORDS },
);
/** Words an array adds to a fence. */
export const ARRAY_WORDS = ARRAY_END - FENCE_WORDS;
export const ARRAY_SIGNAL_ANY = 1;

/** Fence chain link (kernel dma_fence_chain). */
export const {
  PREV: C_PREV, PREV_LOCK: C_PREV_LOCK, FENCE: C_FENCE, PREV_SEQNO_LO: C_PREV_SEQNO_LO, PREV_SEQNO_HI: C_PREV_SEQNO_HI, END: CHAIN_END,
} = defineStruct(
  'fence chain link',
  {
    PREV: 1, // payload word of the previous link or plain fence (0 = none); the link holds a reference
    PREV_LOCK: 1, // lock word guarding C_PREV (read + get, compare-exchange on GC)
    FENCE: 1, // payload word of the contained fence (the link holds a reference)
    PREV_SEQNO_LO: 1, // seqno of prev when the context was reused, else 0 (64-bit)
    PREV_SEQNO_HI: 1,
    PAD: 1, // keeps blocks 8-byte multiples
  },
  { base: FENCE_WORDS },
);
/** Words a chain link adds to a fence. */
export const CHAIN_WORDS = CHAIN_END - FENCE_WORDS;

/**
 * Ledger entry kind of a fence array's signal waiting in a thread's deferred queue (the reference
 * the last child callback held): a dead thread's reaper signals the array and puts it.
 */
export const LGK_ARRAY_SIGNAL = 6;
/**
 * Ledger entry kind of a fence chain's re-arm waiting in a thread's deferred queue (the chain
 * callback's reference): a dead thread's reaper re-arms the chain (or signals it) and puts it.
 */
export const LGK_CHAIN_REARM = 7;
