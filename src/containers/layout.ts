/**
 * The containers' shared-memory structs: a fence array and a fence chain link are fence blocks
 * with words of their own after the fence's (relative to the fence payload word); the containers'
 * thread-slot fields (the chain walks' records).
 */
import { T_LAYERS_END } from '../arena/layout.js';
import { defineStruct } from '../arena/struct.js';
import { FENCE_WORDS, T_FENCE_END } from '../fence/layout.js';

/** Fence array (kernel dma_fence_array). */
const arrayStruct = defineStruct(
  'fence array',
  {
    NUM: 1, // number of child fences
    PENDING: 1, // children still to signal (signal-on-any: 1); goes ≤ 0 when done
    SLOTS: 1, // payload word of the SLOTS block: one child payload word per entry
    MODE: 1, // ARRAY_SIGNAL_ANY
    ARMED: 1, // children armed when an enable failed part way (0 none): the next enable resumes there; also places WORK where a chain link has it
    WORK: 1, // the array's signal queued as container work (see K_WORK)
  },
  { base: FENCE_WORDS },
);
export const { NUM: A_NUM, PENDING: A_PENDING, SLOTS: A_SLOTS, MODE: A_MODE, ARMED: A_ARMED, END: ARRAY_END } = arrayStruct;
/** Words an array adds to a fence. */
export const ARRAY_WORDS = ARRAY_END - FENCE_WORDS;
export const ARRAY_SIGNAL_ANY = 1;

/** Fence chain link (kernel dma_fence_chain). */
const chainStruct = defineStruct(
  'fence chain link',
  {
    PREV: 1, // payload word of the previous link or plain fence (0 = none); the link holds a reference
    PREV_LOCK: 1, // lock word guarding C_PREV (read + get, compare-exchange on GC)
    FENCE: 1, // payload word of the contained fence (the link holds a reference)
    PREV_SEQNO_LO: 1, // seqno of prev when the context was reused, else 0 (64-bit)
    PREV_SEQNO_HI: 1,
    WORK: 1, // the chain's re-arm queued as container work (see K_WORK)
  },
  { base: FENCE_WORDS },
);
export const {
  PREV: C_PREV, PREV_LOCK: C_PREV_LOCK, FENCE: C_FENCE, PREV_SEQNO_LO: C_PREV_SEQNO_LO, PREV_SEQNO_HI: C_PREV_SEQNO_HI, END: CHAIN_END,
} = chainStruct;
/** Words a chain link adds to a fence. */
export const CHAIN_WORDS = CHAIN_END - FENCE_WORDS;

/**
 * A container's work word (the same in an array and a chain link): its queued work — an array's
 * signal, a chain's re-arm — as an item of one thread's container work list (T_WORK_HEAD), like
 * the kernel's irq_work embedded in dma_fence_array and dma_fence_chain: queuing needs no memory.
 * 0: not queued; WORK_END: queued, last of its list; else the payload word of the next item. Taken
 * with a compare-exchange from 0 (a container is queued in one list at a time), then written only
 * by the thread whose list it is in, which stores 0 when it takes the item off to run it.
 */
export const K_WORK = arrayStruct.WORK;
if (chainStruct.WORK !== K_WORK) throw new Error('containers/layout.ts: an array and a chain link must place WORK at the same word');
/** The work word of a list's last item. */
export const WORK_END = 1;

/* ───────────── thread-slot fields (T_* relative to the slot's base word) ───────────── */
/**
 * Chain walk records (src/containers/chainwalk.ts): a stack of the chain walks this thread is in —
 * a re-arm's (armChain), a signaled-query's (chainSignaled), a deadline's (chainSetDeadline) —
 * each naming the fence references its walk holds: every word is set in the run that takes its
 * reference and cleared in the run that drops it or hands it over, so a reaper drops exactly the
 * references a terminated thread's walks still held. Walks nest (a re-arm run by a callback of a
 * signal a signaled-query's poll made, of a release inside another's walk): the first WALK_CAP
 * live in the slot, deeper ones each in a block of their own (struct `chain walk record block`),
 * stacked from the slot's T_WALK_MORE. Only a walk whose block the arena had no room for is
 * counted and not recorded.
 */
export const WALK_CAP = 3;
export const { LINK: W_LINK, PREV: W_PREV, AUX: W_AUX, STEP: W_STEP, END: W_WORDS } = defineStruct('chain walk record', {
  LINK: 1, // payload word of the link (or plain fence) the walk stands on, with a reference (0 none); an array being armed
  PREV: 1, // its predecessor, with the reference the walk's next step took (0 none)
  AUX: 1, // a third reference: the predecessor's own predecessor while a signaled link is collected, then the link's old one on the collected fence; or the callback's on the chain (or an array's on its child) until its node is linked (0 none)
  STEP: 1, // no reference: 0, or where the arming of the array LINK names stands (W_ARMING, child index, phase: src/containers/arraychildren.ts)
});
/** W_STEP of a record that arms an array's child callbacks: this bit, the child index shifted by 2, the phase in the low 2 bits. */
export const W_ARMING = 1 << 30;
/** A chain walk record deeper than WALK_CAP: an INTERNAL block of the thread that pushed it, the record's words first. */
export const { DOWN: WB_DOWN, LEVEL: WB_LEVEL, END: WB_WORDS } = defineStruct(
  'chain walk record block',
  {
    DOWN: 1, // the next shallower record block (payload word), 0 for the one at depth WALK_CAP
    LEVEL: 1, // the walk depth whose record this is (WALK_CAP or more)
  },
  { base: W_WORDS },
);

export const {
  WALK_DEPTH: T_WALK_DEPTH, WALK: T_WALK, WALK_MORE: T_WALK_MORE, WALK_FREE: T_WALK_FREE, WALK_FREE_GEN: T_WALK_FREE_GEN, WORK_HEAD: T_WORK_HEAD, WORK_TAIL: T_WORK_TAIL, WORK_RUN: T_WORK_RUN, END: T_CONTAINERS_END,
} = defineStruct(
  'containers thread slot',
  {
    WALK_DEPTH: 1, // chain walks in progress (records in the slot up to WALK_CAP, deeper ones in blocks)
    WALK: WALK_CAP * W_WORDS, // WALK_CAP chain walk records of W_WORDS words (struct chain walk record)
    WALK_MORE: 1, // the innermost chain walk record block (payload word), 0 none; each names the next shallower
    WALK_FREE: 1, // a record block unlinked and being freed (the reaper frees it if still live)…
    WALK_FREE_GEN: 1, // …and its generation
    WORK_HEAD: 1, // first container of the thread's container work list (see K_WORK), 0 empty; each item holds a reference
    WORK_TAIL: 1, // its last
    WORK_RUN: 1, // the container whose work the thread took off the list and runs, with its reference (0 none)
  },
  { base: T_FENCE_END, limit: T_LAYERS_END },
);
