/**
 * How the layers above the arena take part in its life cycle without the arena knowing their
 * structs: each layer registers, when its module loads, what the arena must do for it
 *
 * - when a dead thread's slot is reaped (or a live thread detaches): {@link onReap}, run in a fixed
 *   order of stages so that, e.g., locks are recovered before anything takes them again;
 * - before a thread detaches: {@link onDetach}, a check that may refuse (a lock still held);
 * - when the arena is checked: {@link onCheck}, which names the layer's permanent blocks (not leaks)
 *   and reports the layer's own problems.
 *
 * Every thread that can reap or check has loaded every layer: the package's one entry point loads
 * them all, and each layer registers in its own module, not in that entry.
 */
import type { Arena } from './arena.js';
import { SLOT_FREE, T_STATE } from './layout.js';
import { describeValue, warn } from '../errors.js';

/** A reaped slot's clean-up for one layer: `slot` is the dead thread's (or the detaching thread's own). */
export type ReapHook = (arena: Arena, slot: number) => void;

/**
 * Reap stages, in the order they run. A layer's hook runs at its stage; the order is what makes
 * recovery correct, so it is written here once instead of following module load order.
 */
export const ReapStage = {
  /** Lock words the dead thread held are released (owner died) before anything else locks them. */
  LOCKS: 10,
  /** Callback nodes the dead thread owned or was freeing. */
  CALLBACKS: 20,
  /**
   * Signals the dead thread had in flight: waiters woken, the rest of the detached callback lists
   * delivered (before its references are dropped: they keep those fences alive).
   */
  SIGNALS: 25,
  /**
   * sw_sync work the dead thread had in flight: the points its `inc` or `close` reached are
   * signaled, a close is finished, the point references it held for signaling are dropped (after
   * SIGNALS: they keep the points alive while their lists are delivered), the point it was
   * creating is freed or put, and the timeline half of a point release it was inside of is done
   * (before RELEASES frees that point's block).
   */
  TIMELINES: 27,
  /**
   * The fence references the dead thread's chain re-arms held for their walks are dropped (after
   * SIGNALS, whose chain callbacks re-arm from the start: the references keep the links alive).
   */
  CHAIN_WALKS: 28,
  /** Fence releases the dead thread had begun are finished. */
  RELEASES: 30,
  /** Its sync-file fds are closed. */
  FILES: 40,
  /** Its callback dispatcher and inbox. */
  DISPATCH: 50,
  /** Everything in its reference ledger is dropped (references, operations, drivers). */
  LEDGER: 60,
  /** Driver operations it had claimed are finished. */
  OPERATIONS: 70,
  /**
   * What only the dead thread would have signaled: its unsignaled fences get -EOWNERDEAD, its
   * sw_sync timelines close (points -ENOENT). After the ledger and the operations, whose own
   * recovery ends jobs and operations with their errors.
   */
  SIGNALERS: 80,
} as const;

interface Registered {
  stage: number;
  hook: ReapHook;
}
const reapHooks: Registered[] = [];

/** Registers `hook` to run at `stage` (see {@link ReapStage}) for every reaped or detaching slot. */
export function onReap(stage: number, hook: ReapHook): void {
  if (reapHooks.some((r) => r.hook === hook)) return;
  reapHooks.push({ stage, hook });
  // Stable sort: hooks of one stage keep their registration order.
  reapHooks.sort((a, b) => a.stage - b.stage);
}

/**
 * Runs every reap hook for `slot`, in stage order. A hook that throws (a bug in fencelab, or an
 * arena corrupted past what its checks catch) does not stop the others: the rest of the dead
 * thread's state is still recovered, and each failure is reported as a process warning with code
 * {@link REAP_FAILED} naming the stage and the slot (a reap runs in a worker's 'exit' listener,
 * where a throw would take the whole process down).
 */
export function runReapHooks(arena: Arena, slot: number): void {
  for (const r of reapHooks) {
    try {
      r.hook(arena, slot);
    } catch (e) {
      warn(`reap of thread slot ${slot} failed at stage ${stageName(r.stage)}: ${e instanceof Error ? e.message : describeValue(e)}`, REAP_FAILED);
    }
  }
}

/** The warning code of a reap hook that threw (see {@link runReapHooks}). */
export const REAP_FAILED = 'FENCELAB_REAP_FAILED';

function stageName(stage: number): string {
  return Object.entries(ReapStage).find(([, v]) => v === stage)?.[0] ?? String(stage);
}

/**
 * The words of blocks a thread holds: the locks layer's robust list (the lock words it holds in
 * raw, lock and operation blocks). `countWord`: the thread-slot word (from the slot's first word)
 * counting them, which arena.free's inline path reads, so a thread that holds none pays one load;
 * `find(arena, hw)`: the index of such a word of the calling thread's inside block `hw`, or -1.
 * arena.free refuses a block under a held word (EBUSY): the list would go on naming freed memory,
 * the lock could never be released, and the thread could never detach. Set by {@link onHeldWords}.
 */
export const heldWords = { countWord: 0, find: (_arena: Arena, _hw: number): number => -1 };

/** Registers the layer whose thread-slot word `countWord` counts held words, and their search (see {@link heldWords}). */
export function onHeldWords(countWord: number, find: (arena: Arena, hw: number) => number): void {
  heldWords.countWord = countWord;
  heldWords.find = find;
}

/** A detach check: the reason the calling thread cannot detach yet, or null. */
export type DetachCheck = (arena: Arena) => string | null;
const detachChecks: DetachCheck[] = [];

/** Registers a check run before the calling thread detaches; a reason makes detach throw EBUSY. */
export function onDetach(check: DetachCheck): void {
  if (!detachChecks.includes(check)) detachChecks.push(check);
}

/** The first reason the calling thread cannot detach, or null. */
export function detachRefusal(arena: Arena): string | null {
  for (const check of detachChecks) {
    const why = check(arena);
    if (why !== null) return why;
  }
  return null;
}

/** What a layer adds to {@link Arena.check}: blocks that live for the arena's lifetime, and problems. */
export interface LayerCheck {
  /** Payload word indices of blocks that are never freed (not counted as leaks). */
  permanent?: number[];
  problems?: string[];
}
export type CheckHook = (arena: Arena) => LayerCheck;
const checkHooks: CheckHook[] = [];

/** Registers a hook that takes part in every arena check. */
export function onCheck(hook: CheckHook): void {
  if (!checkHooks.includes(hook)) checkHooks.push(hook);
}

/**
 * Registers a check of every thread slot in use (not SLOT_FREE, live or dead and not yet reaped):
 * `hook` gets the slot and its first word, and returns the problems it found there — or a
 * {@link LayerCheck}, when the slot also holds blocks that are not leaks (a live thread's ledger).
 */
export function onThreadCheck(hook: (arena: Arena, slot: number, base: number) => string[] | LayerCheck): void {
  onCheck((arena) => {
    const problems: string[] = [];
    const permanent: number[] = [];
    for (let s = 0; s < arena.maxThreads; s++) {
      const b = arena.slotWord(s);
      if (Atomics.load(arena.i32, b + T_STATE) === SLOT_FREE) continue;
      const r = hook(arena, s, b);
      if (Array.isArray(r)) problems.push(...r);
      else {
        problems.push(...(r.problems ?? []));
        permanent.push(...(r.permanent ?? []));
      }
    }
    return { problems, permanent };
  });
}

/** Runs every check hook. */
export function runCheckHooks(arena: Arena): { permanent: Set<number>; problems: string[] } {
  const permanent = new Set<number>();
  const problems: string[] = [];
  for (const hook of checkHooks) {
    const r = hook(arena);
    for (const p of r.permanent ?? []) permanent.add(p);
    problems.push(...(r.problems ?? []));
  }
  return { permanent, problems };
}
