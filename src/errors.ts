/**
 * Errors in one place (piscina habit): every throw in fencelab goes through {@link Errors} so that
 * messages are consistent and callers match on `code`, never on prose.
 *
 * Messages are safe for any value ({@link describeValue}): a Symbol, a BigInt, an object without a
 * prototype or with a throwing `toString`, a revoked Proxy (EINVAL, like any other wrong value).
 * The contract for the caller's own code: an exception thrown by code the caller supplied while an
 * entry reads its argument (a getter, a Proxy trap) propagates unchanged, not wrapped, and the entry
 * reads its arguments before it changes anything, so nothing has changed when it does.
 */

/** Kernel errno values, negative as the kernel passes them (`Errno.EIO === -5`). */
export const Errno = Object.freeze({
  /** Not permitted: unlocking a lock the calling thread does not hold. */
  EPERM: -1,
  /** No such entry: the status of an sw_sync point whose timeline was closed; no deadline set on a point; `SyncFile.merge` of an fd that is not open. */
  ENOENT: -2,
  /** Interrupted: the kernel's value, for statuses a driver sets (`setError`); fencelab does not use it itself. */
  EINTR: -4,
  /** I/O error: the out-fence status of a pool task that threw. */
  EIO: -5,
  /** Bad handle or fd: stale, freed, forged, or cut to 32 bits. */
  EBADF: -9,
  /** Try again: the kernel's value, for statuses a driver sets; fencelab does not use it itself. */
  EAGAIN: -11,
  /** Out of memory: the arena cannot hold the allocation (nothing changed). */
  ENOMEM: -12,
  /** Bad address: the code of {@link UseAfterFreeError}, an access to a freed block caught by the sanitizer. */
  EFAULT: -14,
  /** Busy: detaching while holding locks, freeing a lock the caller holds or a driver with live operations, the result of a task that has not finished. */
  EBUSY: -16,
  /** Exists: the kernel's value, for statuses a driver sets; fencelab does not use it itself. */
  EEXIST: -17,
  /** Invalid argument: a bad option, value or object for the call (misuse). */
  EINVAL: -22,
  /** Table full: the arena's thread table (`maxThreads`) or its fd table (`maxFds`). */
  EMFILE: -24,
  /** No space: the kernel's value, for statuses a driver sets; fencelab does not use it itself. */
  ENOSPC: -28,
  /** Deadlock: taking a fence lock the caller already holds; the status of a fence released unsignaled with callbacks pending. */
  EDEADLK: -35,
  /** No locks: the calling thread already holds the most lock words a thread may hold ({@link SpinLock.MAX_HELD}). */
  ENOLCK: -37,
  /** Not recoverable: a lock word in no state a lock can be in (corrupted shared memory). */
  ENOTRECOVERABLE: -131,
  /** Owner died: the kernel's name for what `lock.ownerDied` reports (a lock taken over from a dead holder). */
  EOWNERDEAD: -130,
  /** Timed out: the kernel's value, for statuses a driver sets (timeouts are return values here, not errors). */
  ETIMEDOUT: -110,
  /** Cancelled: the status of a pool task or driver operation cancelled before it ran. */
  ECANCELED: -125,
  /** No device: the status of a pool task or driver operation whose worker died. */
  ENODEV: -19,
  /** Stale: the kernel's value, for statuses a driver sets; fencelab does not use it itself. */
  ESTALE: -116,
} as const);

/** The name of an errno fencelab knows (a key of {@link Errno}). */
export type ErrnoCode = keyof typeof Errno;

/** Largest magnitude a kernel errno may have (`MAX_ERRNO`). */
export const MAX_ERRNO = 4095;

const NAMES = new Map<number, ErrnoCode>(
  (Object.entries(Errno) as [ErrnoCode, number][]).map(([k, v]) => [v, k]),
);

/**
 * Name of a negative errno (`-5` → `'EIO'`), or `'E<n>'` when it has no name here. Any thread.
 * Throws EINVAL when `errno` is not an integer number.
 */
export function errnoName(errno: number): string {
  if (!Number.isInteger(errno)) throw new FenceError('EINVAL', `errnoName: errno must be an integer, got ${describeValue(errno)}`);
  return NAMES.get(errno) ?? `E${-errno}`;
}

/** The one error type fencelab throws for misuse or exhaustion: `code` names it, `errno` is negative. */
export class FenceError extends Error {
  /** The errno's name (`'EINVAL'`, `'EBADF'`, …): match on it, not on the message. */
  readonly code: string;
  /** The kernel's negative errno for `code` (`Errno[code]`). */
  readonly errno: number;
  /** An error of `code`; the message is prefixed with the code. */
  constructor(code: ErrnoCode, message: string);
  /** @internal An errno with no name here: its {@link errnoName} (`'E32'`) as the code, and itself. */
  constructor(code: string, message: string, errno: number);
  constructor(code: string, message: string, errno?: number) {
    super(`${code}: ${message}`);
    this.name = 'FenceError';
    this.code = code;
    this.errno = errno ?? Errno[code as ErrnoCode];
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

/**
 * The base of the checkers' errors ({@link UseAfterFreeError}, {@link LockOrderError}): a
 * FenceError that carries the checker's structured report beside the message that words it.
 */
export abstract class ReportedError<R> extends FenceError {
  /** What the checker knows (the message says the same in words). */
  readonly report: R;
  /** The error of `code` and `name` for `report`, its message made by `describe`. */
  protected constructor(code: ErrnoCode, name: string, report: R, describe: (r: R) => string) {
    super(code, describe(report));
    this.name = name;
    this.report = report;
  }
}

/** Raised by the sanitizer (throwing mode) at the moment a stale block is touched; `report` says what it knows of the access. */
export class UseAfterFreeError extends ReportedError<UseAfterFreeReport> {
  /** The error for `report` (code EFAULT). */
  constructor(report: UseAfterFreeReport) {
    super('EFAULT', 'UseAfterFreeError', report, describeUseAfterFree);
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
  /** Thread slot of the thread whose acquisition inverts the order. */
  thread: number;
  /** Class of the lock it holds. */
  holding: string;
  /** Class of the lock it was about to take (not taken). */
  acquiring: string;
  /** Its call site. */
  stack: string;
  /** The recorded orders from `acquiring` back to `holding`, each with the call site that first made it. */
  previous: LockOrderStep[];
}

/**
 * Raised by the lock-order checker (sanitize mode, throwing) before an acquisition that inverts
 * a recorded lock order: code EDEADLK, and nothing was taken.
 */
export class LockOrderError extends ReportedError<LockOrderReport> {
  /** The error for `report` (code EDEADLK): both sides of the inversion, with their call sites. */
  constructor(report: LockOrderReport) {
    super('EDEADLK', 'LockOrderError', report, describeLockOrder);
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
 * Whether object `x` is an array: `undefined` for a revoked Proxy, the one object `Array.isArray`
 * throws for (it runs no trap, so no caller code). Any thread; never throws.
 */
export function arrayKind(x: object): boolean | undefined {
  try {
    return Array.isArray(x);
  } catch {
    return undefined;
  }
}

/**
 * Whether `x` is an object (or a function) whose properties an entry may read: false for null, a
 * primitive and a revoked Proxy, which throws a TypeError at any read or test (it runs no trap, so
 * no caller code). A live Proxy passes: its traps are the caller's own code. Any thread; never throws.
 */
export function isLiveObject(x: unknown): x is object {
  return x !== null && (typeof x === 'object' || typeof x === 'function') && arrayKind(x as object) !== undefined;
}

/** `Array.isArray(x)` for an entry's argument: false for a revoked Proxy, where it throws. Any thread; never throws. */
export function isArrayArg(x: unknown): x is unknown[] {
  return arrayKind(x as object) === true;
}

/**
 * `x instanceof C` for an entry's argument, false where `instanceof` throws a TypeError of its own
 * (a revoked Proxy), so that the entry refuses it with a typed error. Any thread; never throws
 * except from a live Proxy's getPrototypeOf trap (the caller's code, see the file comment).
 */
export function isInstance<T>(x: unknown, C: Function & { readonly prototype: T }): x is T {
  return isLiveObject(x) && x instanceof C;
}

function describeObject(array: boolean | undefined): string {
  return array === undefined ? 'a revoked proxy' : array ? 'an array' : 'an object';
}

/**
 * A short description of any value for an error message. Never throws: `String(x)` and template
 * literals do for a Symbol, an object without a prototype, or a throwing `toString`; it reads no
 * property of an object and runs none of a Proxy's traps (a revoked one is `'a revoked proxy'`).
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
      if (x === null) return 'null';
      return describeObject(arrayKind(x as object));
  }
}

/**
 * Reports `e` as a process warning under `code` (FENCELAB_*), for code that must go on instead of
 * throwing (a reaper, a deferred queue with nobody on the stack). Passed as a message and a type,
 * not as the Error: Node ignores the options of an Error warning, and with them the code a
 * listener (the stress run's, src/cli/warnings.ts) tells the library's warnings by.
 */
export function warn(e: unknown, code: string): void {
  const err = e instanceof Error ? e : undefined;
  process.emitWarning(err ? err.message : String(e), { type: err?.name ?? 'Warning', code });
}

/**
 * An options argument: `undefined` → `{}`, an object (not an array) with no key outside `known` as
 * it is; anything else (null, a number, a string, a revoked Proxy, an unknown option) → EINVAL
 * naming `where`, before any option is read. A Proxy's throwing `ownKeys` trap propagates unchanged
 * (the caller's own code, see the file comment). Any thread.
 */
export function optionsArg<T extends object>(options: T | undefined, where: string, known: readonly (keyof T & string)[]): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || arrayKind(options) !== false)
    throw new FenceError('EINVAL', `${where}: options must be an object, got ${describeValue(options)}`);
  // A misspelled option would otherwise be a silent default (`{ size }` for `{ bytes }`).
  for (const key of Object.keys(options))
    if (!(known as readonly string[]).includes(key)) throw new FenceError('EINVAL', `${where}: unknown option ${JSON.stringify(key)} (known: ${known.join(', ')})`);
  return options;
}

/** Error constructors: the only place messages are written. */
export const Errors = {
  badHandle: (what: string, handle: unknown, why: string) =>
    new FenceError('EBADF', `invalid ${what} handle ${typeof handle === 'number' ? handle : describeValue(handle)}: ${why}`),
  invalid: (message: string) => new FenceError('EINVAL', message),
  notArena: (value: unknown, where: string) => new FenceError('EINVAL', `${where}: arena must be an Arena, got ${describeValue(value)}`),
  noMemory: (bytes: number, capacity: number) =>
    new FenceError('ENOMEM', `arena exhausted: cannot allocate ${bytes} bytes (capacity ${capacity})`),
  noRoom: (need: string, room: number) => new FenceError('ENOMEM', `arena exhausted: ${need}, the arena has room for ${room} (nothing was allocated)`),
  notOwner: (what: string, owner: number, me: number) =>
    new FenceError('EPERM', `${what} is held by thread ${owner}, not by the calling thread ${me}`),
  notPermitted: (message: string) => new FenceError('EPERM', message),
  noEntry: (message: string) => new FenceError('ENOENT', message),
  deadlock: (message: string) => new FenceError('EDEADLK', message),
  busy: (message: string) => new FenceError('EBUSY', message),
  tooManyLocks: (held: number) =>
    new FenceError('ENOLCK', `the calling thread already holds ${held} lock words, the most a thread may hold at once`),
  corruptLock: (idx: number, word: number, why: string) =>
    new FenceError('ENOTRECOVERABLE', `lock word @${idx * 4} is in no state a lock can be in (0x${(word >>> 0).toString(16).padStart(8, '0')}): ${why}`),
  corruptArena: (what: string) =>
    new FenceError('ENOTRECOVERABLE', `corrupted arena: ${what} (arena.check() lists what it finds)`),
  tooManyThreads: (max: number) =>
    new FenceError('EMFILE', `arena thread table is full (maxThreads ${max})`),
  tooManyFiles: (max: number) => new FenceError('EMFILE', `fd table is full (${max} entries)`),
  /**
   * An outcome reported as a negative errno (a fence's status), as an error to throw; an errno with
   * no name here keeps its own (code `'E32'`, errno -32), not EIO's — a pool task's EIO says it threw.
   */
  fromErrno: (errno: number, message: string) => {
    const name = NAMES.get(errno);
    return name !== undefined ? new FenceError(name, message) : new FenceError(`E${-errno}`, message, errno);
  },
  badTimeout: (name: string, value: unknown) =>
    new FenceError('EINVAL', `${name} must be a number of ms ≥ 0 (Infinity: no limit), got ${describeValue(value)}`),
} as const;
