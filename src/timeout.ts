/**
 * The one check of a timeout argument, at the bottom of the layering: every wait and lock of
 * fencelab takes `timeoutMs` as a number of milliseconds ≥ 0, Infinity meaning no limit.
 */
import { Errors } from './errors.js';

/**
 * Throws EINVAL naming `name` (e.g. `'wait timeoutMs'`) unless `ms` is a number ≥ 0; NaN, negative
 * numbers and non-numbers (a numeric string included) are refused. Safe for any value.
 */
export function checkTimeout(ms: unknown, name: string): asserts ms is number {
  if (typeof ms !== 'number' || !(ms >= 0)) throw Errors.badTimeout(name, ms);
}

/**
 * The `performance.now()` deadline of a wait of `ms` (undefined or Infinity: Infinity).
 * Throws EINVAL as {@link checkTimeout}.
 */
export function deadlineOf(ms: number | undefined, name: string): number {
  if (ms === undefined) return Infinity;
  checkTimeout(ms, name);
  return performance.now() + ms;
}
