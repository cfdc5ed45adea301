/**
 * The layout constants of the fence hot paths (create, signal, put) as literals, as alloc.ts's
 * `Hot` does for the allocator: tsc writes a const enum's members into the code as numbers, where
 * a module constant is a context-slot load with a hole check (4 bytecode bytes a use, 7 with the
 * arithmetic it feeds, against 3 for an `AddSmi`), and V8 counts bytecode bytes against its
 * inlining budget: 460 for one function, 920 in all for everything inlined into one optimized
 * function. create+signal+put is several times that, so every byte the hot functions shed is
 * more of the path compiled as one piece (test/inline-budget.test.ts). Constants wider than 16
 * bits stay module constants where they are used (as literals they take more bytes, not fewer).
 *
 * The members are checked against the layouts when this module loads; a module that uses them
 * imports it for that check (`import './hot.js'`: tsc drops an import used only for a const
 * enum's members).
 */
import * as A from '../arena/layout.js';
import * as TR from '../trace/layout.js';
import * as L from './layout.js';

/** The fence hot paths' layout constants (see the file comment). @internal */
export const enum FH {
  F_FLAGS = 0,
  F_LOCK = 1,
  F_LENDER = 2,
  F_LENDER_GEN = 3,
  F_OPS = 4,
  F_CB_HEAD = 5,
  F_REFCOUNT = 6,
  F_ERROR = 7,
  F_CONTEXT = 8,
  F_SEQNO_LO = 9,
  F_SEQNO_HI = 10,
  F_CB_TAIL = 11,
  F_TIMESTAMP = 12,
  FLAG_INITIALIZED = 1,
  FLAG_INLINE_LOCK = 2,
  FLAG_SIGNALED = 8,
  /** FLAG_SIGNALED | FLAG_TIMESTAMP: what a signal sets. */
  SIGNALED_TIMESTAMP = 8 | 16,
  /** The calling thread's signal records (slot-relative) and their shape. */
  T_SIGNAL = 72,
  T_SIGNAL_DEPTH = 71,
  SIGNAL_CAP = 5,
  SIG_WORDS = 7,
  SIG_FW = 0,
  SIG_FGEN = 1,
  SIG_NODE = 2,
  SIG_NGEN = 3,
  SIG_NEXT = 4,
  SIG_SHARED = 5,
  CB_NEXT = 1,
  /** The calling thread's release-record depth (slot-relative), and the depth from which a release is deferred. */
  T_RELEASE_DEPTH = 53,
  RELEASE_INLINE = 5,
  /** The block's generation word, relative to its payload's first word (B_GEN - BLOCK_HEADER_WORDS). */
  PAYLOAD_B_GEN = -1,
  BLOCK_HEADER_WORDS = 2,
  /** The block's generation word, relative to its header word. */
  B_GEN = 1,
  /** The creating thread's serial (slot-relative). */
  T_SERIAL = 4,
  /** The trace header's category word, and the categories of the hot paths' tracepoints. */
  TH_FLAGS = 52,
  TC_FENCE = 1,
  TC_RELEASE = 128,
  /** A trace event's words (relative to its entry), and what the init and signaled events' kind words hold. */
  EV_NS_LO = 0,
  EV_NS_HI = 1,
  EV_KIND = 2,
  EV_A = 3,
  EV_B = 4,
  EV_C = 5,
  EV_D = 6,
  EV_E = 7,
  EV_FENCE_INIT = 1,
  EV_FENCE_SIGNALED = 4,
  /** INIT_INLINE_LOCK in the kind word (shifted by EVENT_BITS_SHIFT). */
  INIT_INLINE_LOCK_BITS = 256,
  /** Where the seqno's bits 32–47 go in the kind word (INIT_SEQNO_HI_SHIFT + EVENT_BITS_SHIFT). */
  INIT_SEQNO_HI_BITS_SHIFT = 16,
}

{
  const pairs: [FH, number][] = [
    [FH.F_FLAGS, L.F_FLAGS], [FH.F_LOCK, L.F_LOCK], [FH.F_LENDER, L.F_LENDER], [FH.F_LENDER_GEN, L.F_LENDER_GEN], [FH.F_OPS, L.F_OPS],
    [FH.F_CB_HEAD, L.F_CB_HEAD], [FH.F_REFCOUNT, L.F_REFCOUNT], [FH.F_ERROR, L.F_ERROR], [FH.F_CONTEXT, L.F_CONTEXT],
    [FH.F_SEQNO_LO, L.F_SEQNO_LO], [FH.F_SEQNO_HI, L.F_SEQNO_HI], [FH.F_CB_TAIL, L.F_CB_TAIL], [FH.F_TIMESTAMP, L.F_TIMESTAMP],
    [FH.FLAG_INITIALIZED, L.FLAG_INITIALIZED], [FH.FLAG_INLINE_LOCK, L.FLAG_INLINE_LOCK], [FH.FLAG_SIGNALED, L.FLAG_SIGNALED],
    [FH.SIGNALED_TIMESTAMP, L.FLAG_SIGNALED | L.FLAG_TIMESTAMP], [FH.T_SIGNAL, L.T_SIGNAL], [FH.T_SIGNAL_DEPTH, L.T_SIGNAL_DEPTH],
    [FH.SIGNAL_CAP, L.SIGNAL_CAP], [FH.SIG_WORDS, L.SIG_WORDS], [FH.SIG_FW, L.SIG_FW], [FH.SIG_FGEN, L.SIG_FGEN], [FH.SIG_NODE, L.SIG_NODE],
    [FH.SIG_NGEN, L.SIG_NGEN], [FH.SIG_NEXT, L.SIG_NEXT], [FH.SIG_SHARED, L.SIG_SHARED], [FH.CB_NEXT, L.CB_NEXT], [FH.T_RELEASE_DEPTH, L.T_RELEASE_DEPTH],
    [FH.RELEASE_INLINE, L.RELEASE_INLINE],
    [FH.PAYLOAD_B_GEN, A.B_GEN - A.BLOCK_HEADER_WORDS], [FH.BLOCK_HEADER_WORDS, A.BLOCK_HEADER_WORDS], [FH.B_GEN, A.B_GEN], [FH.T_SERIAL, A.T_SERIAL],
    [FH.TH_FLAGS, TR.TH_FLAGS], [FH.TC_FENCE, TR.TC_FENCE], [FH.TC_RELEASE, TR.TC_RELEASE],
    [FH.EV_NS_LO, TR.EV_NS_LO], [FH.EV_NS_HI, TR.EV_NS_HI], [FH.EV_KIND, TR.EV_KIND], [FH.EV_A, TR.EV_A], [FH.EV_B, TR.EV_B],
    [FH.EV_C, TR.EV_C], [FH.EV_D, TR.EV_D], [FH.EV_E, TR.EV_E], [FH.EV_FENCE_INIT, TR.EV_FENCE_INIT], [FH.EV_FENCE_SIGNALED, TR.EV_FENCE_SIGNALED],
    [FH.INIT_INLINE_LOCK_BITS, TR.INIT_INLINE_LOCK << TR.EVENT_BITS_SHIFT], [FH.INIT_SEQNO_HI_BITS_SHIFT, TR.INIT_SEQNO_HI_SHIFT + TR.EVENT_BITS_SHIFT],
  ];
  const wrong = pairs.findIndex(([hot, real]) => hot !== real);
  if (wrong >= 0) throw new Error(`fence/hot.ts: constant #${wrong} of FH (${pairs[wrong][0]}) no longer matches the layout (${pairs[wrong][1]})`);
}
