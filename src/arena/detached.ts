/**
 * What becomes of an Arena view once it detached: {@link Arena.detach} gives the view a prototype
 * of its own whose every method and getter throws EBADF (`isDetached` excepted, and `detach`,
 * which stays idempotent). The view's own fields are left as they are, so the hot paths of the
 * methods pay nothing for the check; entries that take an arena (arenaArg) see a detached view
 * fail their `instanceof Arena` and learn why out of line ({@link notArenaError}).
 */
import { Errors, FenceError } from '../errors.js';

/** The views that detached (for {@link notArenaError}: a WeakSet lookup never throws, whatever the value). */
const detachedViews = new WeakSet<object>();
/** The prototype of detached views, built from the Arena's own on first use. */
let detachedPrototype: object | undefined;

/** The error of a use of a detached view: EBADF naming `where`. */
export function detachedError(where: string): FenceError {
  return new FenceError('EBADF', `${where}: the arena view was detached (the thread attaches again with Arena.attach(buffer))`);
}

/**
 * The error an entry throws for `value`, not an Arena, as its `where` argument: EBADF for a
 * detached view, else EINVAL (Errors.notArena). Never throws itself.
 */
export function notArenaError(value: unknown, where: string): FenceError {
  return typeof value === 'object' && value !== null && detachedViews.has(value) ? detachedError(where) : Errors.notArena(value, where);
}

/**
 * Makes `view` (an Arena whose class prototype is `proto`) refuse every use: its prototype becomes
 * one whose methods and getters throw EBADF. Threads: the view's own, at the end of detach.
 */
export function makeDetached(view: object, proto: object): void {
  detachedViews.add(view);
  Object.setPrototypeOf(view, (detachedPrototype ??= refusingPrototype(proto)));
}

/**
 * A prototype with every method and accessor of `proto` replaced by one that throws EBADF
 * (`isDetached` reads true, `detach` does nothing). Not an Arena: `instanceof Arena` is false.
 */
function refusingPrototype(proto: object): object {
  const out: object = Object.create(Object.prototype);
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, name)!;
    const where = `arena.${name}`;
    const refuse = (): never => {
      throw detachedError(where);
    };
    if (name === 'isDetached') Object.defineProperty(out, name, { get: () => true, configurable: true });
    else if (name === 'detach') Object.defineProperty(out, name, { value: () => undefined, configurable: true, writable: true });
    else if (typeof d.value === 'function') Object.defineProperty(out, name, { value: refuse, configurable: true, writable: true });
    else Object.defineProperty(out, name, { get: refuse, configurable: true });
  }
  return out;
}
