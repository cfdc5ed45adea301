/**
 * Errors in one place (piscina habit): every throw in fencelab goes through {@link Errors} so that
 * messages are consistent and callers match on `code`, never on prose.
 */

/** Kernel errno values, negative as the kernel passes them (`Errno.EIO === -5`). */
export const Errno = Object.freeze({
  EPERM: -1,
  ENOENT: -2,
  EINTR: -4,
  EIO: -5,
  EBADF: -9,
  EAGAIN: -11,
  ENOMEM: -12,
  EFAULT: -14,
  EBUSY: -16,
  EEXIST: -17,
  EINVAL: -22,
  EMFILE: -24,
  ENOSPC: -28,
  EDEADLK: -35,
  ENOLCK: -37,
  ENOTRECOVERABLE: -131,
  EOWNERDEAD: -130,
  ETIMEDOUT: -110,
  ECANCELED: -125,
  ENODEV: -19,
  ESTALE: -116,
} as const);

export type ErrnoCode = keyof typeof Errno;

/** Largest magnitude a kernel errno may have (`MAX_ERRNO`). */
export const MAX_ERRNO = 4095;

const NAMES = new Map<number, ErrnoCode>(
  (Object.entries(Errno) as [ErrnoCode, number][]).map(([k, v]) => [v, k]),
);

/** Name of a negative errno (`-5` → `'EIO'`), or `'E<n>'` when it has no name here. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `E${-errno}`;
}

/** The one error type fencelab throws for misuse or exhaustion: `code` names it, `errno` is negative. */
export class FenceError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(code: ErrnoCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'FenceError';
    this.code = code;
    this.errno = Errno[code];
  }
}

/** What the sanitizer knows about one stale access. */
export interface UseAfterFreeReport {
  /** What was accessed: `'fence'`, `'lock'`, `'fence-lock'` (a fence's borrowed lock). */
  access: string;
  /** Handle of the fence the access went through, or 0. */
  fence: number;
  /** Byte offset of the stale block. */
  block: number;
  /** Generation the accessor took the block at. */
  takenGeneration: number;
  /** Generation the block has now. */
  currentGeneration: number;
  /** Thread slot that freed the block the accessor took (-1 unknown). */
  freedBy: number;
  /** `'free'` when nobody reuses the block yet, else the type name of its new owner. */
  nowType: string;
  /** Thread slot that allocated the block now living there (-1 when free). */
  nowOwner: number;
  /** Thread slot that made the stale access. */
  thread: number;
}

/** Raised by the sanitizer (throwing mode) at the moment a stale block is touched. */
export class UseAfterFreeError extends FenceError {
  readonly report: UseAfterFreeReport;
  constructor(report: UseAfterFreeReport) {
    super('EFAULT', describeUseAfterFree(report));
    this.name = 'UseAfterFreeError';
    this.report = report;
  }
}

export function describeUseAfterFree(r: UseAfterFreeReport): string {
  const via = r.fence ? `fence ${r.fence}` : 'a stale reference';
  const now =
    r.nowType === 'free'
      ? 'it is free now'
      : `it now holds a ${r.nowType} (generation ${r.currentGeneration}) allocated by thread ${r.nowOwner}`;
  return (
    `use-after-free: ${r.access} access through ${via} touched block @${r.block} ` +
    `taken at generation ${r.takenGeneration}, freed by thread ${r.freedBy}; ${now}; accessed by thread ${r.thread}`
  );
}

/** One recorded lock order: a thread took `acquiring` while it held `holding`, at `stack`. */
export interface LockOrderStep {
  /** Class of the lock held (`'fence context 3'`, `'lock word @1234'`). */
  holding: string;
  /** Class of the lock taken under it. */
  acquiring: string;
  /** Thread slot that first took them in this order. */
  thread: number;
  /** Its call site (sanitize mode captures it when an order is first seen). */
  stack: string;
}

/**
 * What the lock-order checker knows about one inversion: thread `thread` takes `acquiring` while
 * holding `holding` at `stack`, and `previous` is the chain of recorded orders that leads from
 * `acquiring` back to `holding` (one step for a plain ABBA).
 */
export interface LockOrderReport {
  thread: number;
  holding: string;
  acquiring: string;
  stack: string;
  previous: LockOrderStep[];
}

/**
 * Raised by the lock-order checker (sanitize mode, throwing) before an acquisition that inverts
 * a recorded lock order: code EDEADLK, and nothing was taken.
 */
export class LockOrderError extends FenceError {
  readonly report: LockOrderReport;
  constructor(report: LockOrderReport) {
    super('EDEADLK', describeLockOrder(report));
    this.name = 'LockOrderError';
    this.report = report;
  }
}

export function describeLockOrder(r: LockOrderReport): string {
  const steps = r.previous.map((p) => `thread ${p.thread} took ${p.acquiring} while holding ${p.holding}, at:\n${indent(p.stack)}`);
  return (
    `lock order inversion: thread ${r.thread} takes ${r.acquiring} while holding ${r.holding}, at:\n${indent(r.stack)}\n` +
    `but ${steps.join('\nand ')}\n(the two orders together can deadlock)`
  );
}

function indent(stack: string): string {
  return stack.split('\n').map((l) => `    ${l}`).join('\n');
}

/** "No error yet" for {@link attempt}: a value no step throws. */
export const NO_ERROR: unique symbol = Symbol('no error');

/**
 * Runs `step(x, a, b)` for a run of steps that must all happen (callbacks, puts, reapers) even
 * when one throws: returns `first` as given, or what the step threw when `first` is still
 * {@link NO_ERROR}. The caller rethrows the first failure after the last step with
 * {@link rethrowFirst}. Allocates nothing.
 */
export function attempt<T>(step: (x: T, a: number, b: number) => void, x: T, a: number, b: number, first: unknown): unknown {
  try {
    step(x, a, b);
  } catch (e) {
    return first === NO_ERROR ? e : first;
  }
  return first;
}

/** Throws `first` unless it is {@link NO_ERROR} (see {@link attempt}). */
export function rethrowFirst(first: unknown): void {
  if (first !== NO_ERROR) throw first;
}

/**
 * A short description of any value for an error message. Never throws: `String(x)` and template
 * literals do for a Symbol, an object without a prototype, or a throwing `toString`.
 */
export function describeValue(x: unknown): string {
  switch (typeof x) {
    case 'string':
      return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(x);
    case 'bigint':
      return `${x}n`;
    case 'symbol':
      return x.description === undefined ? 'a symbol' : `Symbol(${x.description})`;
    case 'function':
      return 'a function';
    default:
      return x === null ? 'null' : Array.isArray(x) ? 'an array' : 'an object';
  }
}

/** Error constructors: the only place messages are written. */
export const Errors = {
  badHandle: (what: string, handle: number, why: string) =>
    new FenceError('EBADF', `invalid ${what} handle ${handle}: ${why}`),
  invalid: (message: string) => new FenceError('EINVAL', message),
  noMemory: (bytes: number, capacity: number) =>
    new FenceError('ENOMEM', `arena exhausted: cannot allocate ${bytes} bytes (capacity ${capacity})`),
  notOwner: (what: string, owner: number, me: number) =>
    new FenceError('EPERM', `${what} is held by thread ${owner}, not by the calling thread ${me}`),
  noEntry: (message: string) => new FenceError('ENOENT', message),
  deadlock: (message: string) => new FenceError('EDEADLK', message),
  busy: (message: string) => new FenceError('EBUSY', message),
  tooManyLocks: (held: number) =>
    new FenceError('ENOLCK', `the calling thread already holds ${held} lock words, the most a thread may hold at once`),
  corruptLock: (idx: number, word: number, why: string) =>
    new FenceError('ENOTRECOVERABLE', `lock word @${idx * 4} is in no state a lock can be in (0x${(word >>> 0).toString(16).padStart(8, '0')}): ${why}`),
  tooManyThreads: (max: number) =>
    new FenceError('EMFILE', `arena thread table is full (maxThreads ${max})`),
  tooManyFiles: (max: number) => new FenceError('EMFILE', `fd table is full (${max} entries)`),
  /** An outcome reported as a negative errno (a fence's status), as an error to throw. */
  fromErrno: (errno: number, message: string) => new FenceError(NAMES.get(errno) ?? 'EIO', message),
  badTimeout: (name: string, value: unknown) =>
    new FenceError('EINVAL', `${name} must be a number of ms ≥ 0 (Infinity: no limit), got ${describeValue(value)}`),
} as const;
