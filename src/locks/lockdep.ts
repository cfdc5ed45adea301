/**
 * The lock-order checker (sanitize mode), in the spirit of the kernel's lockdep: every lock has a
 * class; whenever a thread takes a lock while it holds others, the order "held class → new class"
 * becomes an edge of one graph in shared memory (the arena's sanitizer area), so the orders every
 * thread has used meet there. A new edge that closes a cycle is an inversion: some thread took
 * these classes the other way round, and the two together can deadlock — reported before this
 * acquisition waits, whether or not the timing deadlocks this time.
 *
 * Classes (keys, see LD_* in layout.ts): a fence's inline lock is classed by its fence context
 * (a driver's fences are ordered as one); a lock word of its own — a SpinLock, or the word a
 * fence borrows from its lender — is its own class, keyed by the word and its block's generation
 * (a JavaScript lock has no init site to key on, and a freed and reused word is a new lock).
 * Orders between locks of one class are not checked (fences of one context are often nested in
 * seqno order). The library's own short internal locks (a chain link's prev lock, a timeline's
 * lock, an fd entry's) are not classed.
 *
 * Nesting annotation (kernel spin_lock_nested): a fence taken while its container (an array
 * holding it as a child, a chain link holding it as its fence or predecessor) is held gets the
 * nested subclass of its class, so "container, then its child" orders no pair of classes against
 * the child's own orders.
 *
 * Costs: nothing without sanitize (callers test `arena.sanitize` first). With it, a lock taken
 * while nothing is held is pushed on this thread's held list and no more; a nested one looks its
 * edges up in a per-thread cache, and only an order never seen before touches the shared graph,
 * searches it and captures the call site (`new Error().stack`).
 */
import { arenaArg, type Arena } from '../arena/arena.js';
import { LockOrderError, type LockOrderReport, type LockOrderStep } from '../errors.js';
import * as L from './layout.js';
import { callSite, loadStack, storeStack } from './lockstacks.js';

const { LC_KEY, LC_HEAD, LC_INFO, LC_WORDS, LE_PAIR, LE_NEXT, LE_THREAD, LE_DEAD, LE_WORDS } = L;

/** Most reports one thread keeps in counting mode (the arena-wide count goes on). */
const MAX_REPORTS = 1000;

const HELD_KEY = 0;
const HELD_WORD = 1;
const HELD_FW = 2;
const HELD_WORDS = 3;

/** One thread's view of the checker for one arena. */
class ThreadState {
  /** Held locks, in acquisition order, HELD_WORDS each: class key, lock word, fence payload word (0: not a fence). */
  held = new Int32Array(16 * HELD_WORDS);
  /** How many. */
  n = 0;
  /** Edges (class entry pairs) this thread knows are in the graph. */
  readonly known = new Set<number>();
  /** Class entry of each key this thread has looked up. */
  readonly entries = new Map<number, number>();
  readonly reports: LockOrderReport[] = [];
  stacks: Uint16Array | undefined;
}

const states = new WeakMap<Arena, ThreadState>();
let lastArena: Arena | undefined;
let lastState: ThreadState | undefined;

function stateOf(arena: Arena): ThreadState {
  if (arena === lastArena) return lastState as ThreadState;
  let s = states.get(arena);
  if (s === undefined) {
    s = new ThreadState();
    states.set(arena, s);
  }
  lastArena = arena;
  lastState = s;
  return s;
}

/**
 * Whether fence `innerFw` is a direct part of container `outerFw` (an array's child, a chain
 * link's fence or predecessor): each container kind registers its test at load (see {@link onNesting}).
 */
type NestingCheck = (i32: Int32Array, outerFw: number, innerFw: number) => boolean;
const nestingChecks: NestingCheck[] = [];

/** Registers a container kind's nesting test: its children are taken nested under it. */
export function onNesting(check: NestingCheck): void {
  nestingChecks.push(check);
}

function nestedIn(i32: Int32Array, outerFw: number, innerFw: number): boolean {
  for (const check of nestingChecks) if (check(i32, outerFw, innerFw)) return true;
  return false;
}

/** Class key of a fence's inline lock: its fence context. */
export function contextClass(context: number): number {
  return L.LD_KIND_CONTEXT | (context & L.LD_ID_MASK);
}

/** Class key of a lock word of its own: the word at `idx` in a block of generation `gen`. */
export function wordClass(idx: number, gen: number): number {
  let h = Math.imul(idx ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(gen + 1, 0x85ebca77);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  // 0 would read as "no id": keep the id non-zero so that a key never equals a context 0 key's id by accident.
  return L.LD_KIND_WORD | (h & L.LD_ID_MASK || 1);
}

/**
 * Before a blocking acquisition of the lock word `word` of class `key` (fence payload word `fw`,
 * 0 for a SpinLock): checks the order against every lock this thread holds and records the new
 * orders. Returns the class key the lock is held under (nested, when taken under its container);
 * pass it to {@link lockdepAcquired} once the lock is taken.
 * Throws LockOrderError (EDEADLK) for an inversion in throwing mode, nothing taken; in counting
 * mode records it and returns. Threads: the acquiring thread.
 */
export function lockdepCheck(arena: Arena, key: number, word: number, fw: number): number {
  // Small enough to inline: the usual acquisition holds nothing else and orders nothing.
  const s = arena === lastArena ? (lastState as ThreadState) : stateOf(arena);
  return s.n === 0 ? key : checkNested(arena, s, key, word, fw);
}

function checkNested(arena: Arena, s: ThreadState, key: number, word: number, fw: number): number {
  const n = s.n;
  const held = s.held;
  if (fw !== 0) {
    for (let j = 0; j < n; j++) {
      const outer = held[j * HELD_WORDS + HELD_FW];
      if (outer !== 0 && nestedIn(arena.i32, outer, fw)) {
        key |= L.LD_NESTED;
        break;
      }
    }
  }
  for (let j = 0; j < n; j++) {
    const hk = held[j * HELD_WORDS + HELD_KEY];
    if (hk === key) continue;
    const from = entryOf(arena, s, hk, held[j * HELD_WORDS + HELD_WORD]);
    const to = entryOf(arena, s, key, word);
    if (from < 0 || to < 0) continue; // tables full: counted in LD_OVERFLOW
    const pair = (from << 12) | to;
    if (s.known.has(pair)) continue;
    addEdge(arena, s, from, to, pair);
  }
  return key;
}

/** Records that the lock word `word` is now held under class `key` (after lockdepCheck, or a tryLock). */
export function lockdepAcquired(arena: Arena, key: number, word: number, fw: number): void {
  const s = arena === lastArena ? (lastState as ThreadState) : stateOf(arena);
  const at = s.n * HELD_WORDS;
  const held = at === s.held.length ? grow(s) : s.held;
  held[at + HELD_KEY] = key;
  held[at + HELD_WORD] = word;
  held[at + HELD_FW] = fw;
  s.n++;
}

function grow(s: ThreadState): Int32Array {
  const held = new Int32Array(s.held.length * 2);
  held.set(s.held);
  s.held = held;
  return held;
}

/**
 * {@link lockdepCheck} and {@link lockdepAcquired} at once for a thread that holds no lock (no
 * order to check): records `word` as held under `key` and returns true, before the caller's
 * one compare-exchange (undone with {@link lockdepReleased} when that fails). False, nothing
 * recorded, when the thread holds some: the caller checks first.
 */
export function lockdepFirst(arena: Arena, key: number, word: number, fw: number): boolean {
  const s = arena === lastArena ? (lastState as ThreadState) : stateOf(arena);
  if (s.n !== 0) return false;
  s.held[HELD_KEY] = key;
  s.held[HELD_WORD] = word;
  s.held[HELD_FW] = fw;
  s.n = 1;
  return true;
}

/** Forgets the held lock word `word` (any release order; a word not on the list changes nothing). */
export function lockdepReleased(arena: Arena, word: number): void {
  const s = arena === lastArena ? (lastState as ThreadState) : stateOf(arena);
  const last = s.n - 1;
  if (last >= 0 && s.held[last * HELD_WORDS + HELD_WORD] === word) s.n = last; // the usual case: the newest first
  else releaseOutOfOrder(s, word);
}

function releaseOutOfOrder(s: ThreadState, word: number): void {
  const held = s.held;
  for (let j = s.n - 2; j >= 0; j--) {
    if (held[j * HELD_WORDS + HELD_WORD] !== word) continue;
    held.copyWithin(j * HELD_WORDS, (j + 1) * HELD_WORDS, s.n * HELD_WORDS);
    s.n--;
    return;
  }
}

/** Inversions reported in the arena so far, all threads (0 without sanitize). Throws EINVAL (not an Arena). */
export function lockOrderCount(arena: Arena): number {
  arenaArg(arena, 'lockOrderCount');
  return arena.sanitizerArea === 0 ? 0 : Atomics.load(arena.i32, arena.sanitizerArea + L.LD_REPORTS);
}

/** Inversions this thread recorded in counting mode (`sanitize: 'count'`), oldest first. Throws EINVAL (not an Arena). */
export function lockOrderReports(arena: Arena): readonly LockOrderReport[] {
  arenaArg(arena, 'lockOrderReports');
  return states.get(arena)?.reports ?? [];
}

/* ───────────── the shared graph ───────────── */

/**
 * The class entry of `key`, claimed in the shared table on first sight (open addressing with a
 * compare-exchange). `word`: the lock word, to name a word class. -1 when the table is full.
 */
function entryOf(arena: Arena, s: ThreadState, key: number, word: number): number {
  const e = s.entries.get(key);
  if (e !== undefined) return e;
  const i32 = arena.i32;
  const base = arena.sanitizerArea + L.LD_CLASS;
  let h = (Math.imul(key, 0x9e3779b1) >>> 0) % L.LD_CLASSES;
  for (let probe = 0; probe < L.LD_CLASSES; probe++, h = (h + 1) % L.LD_CLASSES) {
    const c = base + h * LC_WORDS;
    const k = Atomics.load(i32, c + LC_KEY);
    if (k === 0) {
      const won = Atomics.compareExchange(i32, c + LC_KEY, 0, key);
      if (won !== 0 && won !== key) continue; // taken by another class meanwhile: probe on
      if (won === 0) Atomics.store(i32, c + LC_INFO, (key & ~(L.LD_NESTED | L.LD_ID_MASK)) === L.LD_KIND_CONTEXT ? key & L.LD_ID_MASK : word);
      s.entries.set(key, h);
      return h;
    }
    if (k === key) {
      s.entries.set(key, h);
      return h;
    }
  }
  Atomics.add(i32, arena.sanitizerArea + L.LD_OVERFLOW, 1);
  return -1;
}

/** The name of class entry `e` in a report. */
function className(arena: Arena, e: number): string {
  const i32 = arena.i32;
  const c = arena.sanitizerArea + L.LD_CLASS + e * LC_WORDS;
  const key = Atomics.load(i32, c + LC_KEY);
  const nested = key & L.LD_NESTED ? ' (nested in its container)' : '';
  const info = Atomics.load(i32, c + LC_INFO);
  if ((key & ~(L.LD_NESTED | L.LD_ID_MASK)) === L.LD_KIND_CONTEXT) return `fence context ${info}${nested}`;
  return `lock word @${info * 4}${nested}`;
}

/**
 * Records the order from → to (class entries) and checks it: inserted first, then the graph is
 * searched for a way back from `to` to `from`. Two threads adding the two halves of an inversion
 * at once both insert before they search (sequentially consistent atomics), so at least one of
 * them finds the other's edge.
 */
function addEdge(arena: Arena, s: ThreadState, from: number, to: number, pair: number): void {
  const i32 = arena.i32;
  const ld = arena.sanitizerArea;
  const base = ld + L.LD_EDGE;
  const stack = callSite();
  let h = (Math.imul(pair + 1, 0x9e3779b1) >>> 0) % L.LD_EDGES;
  let edge = -1;
  let mine = false;
  for (let probe = 0; probe < L.LD_EDGES; probe++, h = (h + 1) % L.LD_EDGES) {
    const e = base + h * LE_WORDS;
    const p = Atomics.load(i32, e + LE_PAIR);
    if (p === pair + 1) {
      edge = h;
      break;
    }
    if (p !== 0) continue;
    // Fill in the entry before it can be found, then claim it; a loser leaves it to the winner.
    if (Atomics.compareExchange(i32, e + LE_PAIR, 0, pair + 1) !== 0) {
      if (Atomics.load(i32, e + LE_PAIR) === pair + 1) {
        edge = h;
        break;
      }
      continue;
    }
    edge = h;
    mine = true;
    break;
  }
  if (edge < 0) {
    Atomics.add(i32, ld + L.LD_OVERFLOW, 1);
    return;
  }
  const e = base + edge * LE_WORDS;
  if (mine) {
    Atomics.store(i32, e + LE_THREAD, arena.slot);
    storeStack(arena, s, e, stack);
    // Pushed on the from-class's list last: a searcher that follows it finds a complete entry.
    const head = ld + L.LD_CLASS + from * LC_WORDS + LC_HEAD;
    for (;;) {
      const old = Atomics.load(i32, head);
      Atomics.store(i32, e + LE_NEXT, old);
      if (Atomics.compareExchange(i32, head, old, edge + 1) === old) break;
    }
  } else if (Atomics.load(i32, e + LE_DEAD) === 0) {
    // Somebody recorded this order before: it is part of the graph, checked when it was added.
    s.known.add(pair);
    return;
  } else {
    Atomics.store(i32, e + LE_DEAD, 0); // an order reported before is taken again: check it again
  }
  const path = findPath(arena, to, from);
  if (path === null) {
    s.known.add(pair);
    return;
  }
  // The inversion is reported, and its edge leaves the graph: the order it contradicts stays the
  // known one, and taking the locks this way again is reported again.
  Atomics.store(i32, e + LE_DEAD, 1);
  report(arena, s, from, to, stack, path);
}

/**
 * Breadth-first search over live edges from class entry `start` to `goal`: the edges of the
 * shortest path, or null. Bounded by the table sizes (a corrupted list cannot loop it forever).
 */
function findPath(arena: Arena, start: number, goal: number): number[] | null {
  const i32 = arena.i32;
  const ld = arena.sanitizerArea;
  const via = new Int32Array(L.LD_CLASSES).fill(-2); // edge entry that reached the class; -1 the start
  via[start] = -1;
  const queue = [start];
  let steps = 0;
  for (let q = 0; q < queue.length; q++) {
    const c = queue[q];
    let link = Atomics.load(i32, ld + L.LD_CLASS + c * LC_WORDS + LC_HEAD);
    while (link !== 0 && steps++ < L.LD_EDGES * 4) {
      const e = ld + L.LD_EDGE + (link - 1) * LE_WORDS;
      const p = Atomics.load(i32, e + LE_PAIR) - 1;
      link = Atomics.load(i32, e + LE_NEXT);
      if (p < 0 || Atomics.load(i32, e + LE_DEAD) !== 0) continue;
      const next = p & 0xfff;
      if (next >= L.LD_CLASSES || via[next] !== -2) continue;
      via[next] = (e - ld - L.LD_EDGE) / LE_WORDS;
      if (next === goal) {
        const path: number[] = [];
        for (let x = goal; via[x] >= 0; ) {
          const edge = via[x];
          path.unshift(edge);
          x = (Atomics.load(i32, ld + L.LD_EDGE + edge * LE_WORDS + LE_PAIR) - 1) >>> 12;
        }
        return path;
      }
      queue.push(next);
    }
  }
  return null;
}

function report(arena: Arena, s: ThreadState, from: number, to: number, stack: string, path: number[]): void {
  const i32 = arena.i32;
  const ld = arena.sanitizerArea;
  const previous: LockOrderStep[] = path.map((edge) => {
    const e = ld + L.LD_EDGE + edge * LE_WORDS;
    const p = Atomics.load(i32, e + LE_PAIR) - 1;
    return {
      holding: className(arena, p >>> 12),
      acquiring: className(arena, p & 0xfff),
      thread: Atomics.load(i32, e + LE_THREAD),
      stack: loadStack(arena, s, e),
    };
  });
  const r: LockOrderReport = { thread: arena.slot, holding: className(arena, from), acquiring: className(arena, to), stack, previous };
  Atomics.add(i32, ld + L.LD_REPORTS, 1);
  if (!arena.counting) throw new LockOrderError(r);
  if (s.reports.length < MAX_REPORTS) s.reports.push(r);
}
