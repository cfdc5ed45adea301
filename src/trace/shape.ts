/**
 * Shape checks of plain data a caller hands in (an arena dump read from JSON, a trace snapshot, a
 * Chrome trace), deep enough that a renderer reading a checked value cannot crash on it: every
 * field the renderers read is checked for its type. Pure; any thread.
 */
import { arrayKind, describeValue, Errors } from '../errors.js';

/**
 * The shape of a value: type names joined by `|` (`'number'`, `'string|null'`, `'integer'` a
 * whole number; `'unknown'` takes anything), an array of one shape (`[shape]`), or an object with a
 * shape per key (a key ending in `?` may be absent or undefined; the key `'*'` checks every own
 * enumerable value; keys not listed are not checked).
 */
export type Shape = string | readonly [Shape] | { readonly [key: string]: Shape };

/**
 * Checks `x` against `shape`. Returns nothing. Throws EINVAL naming the first field that is wrong
 * by its path from `path` (`dump.threads[0] lacks \`slot\``). A throwing getter of `x` propagates.
 */
export function checkShape(x: unknown, shape: Shape, path: string): void {
  if (typeof shape === 'string') checkType(x, shape, path);
  else if (isArrayShape(shape)) checkArray(x, shape[0], path);
  else checkObject(x, shape, path);
}

function isArrayShape(shape: Shape): shape is readonly [Shape] {
  return Array.isArray(shape);
}

function checkType(x: unknown, types: string, path: string): void {
  if (types === 'unknown') return;
  const t = x === null ? 'null' : Number.isInteger(x) && types.includes('integer') ? 'integer' : typeof x;
  if (!types.split('|').includes(t)) throw Errors.invalid(`${path} must be ${types.split('|').join(' or ')}, got ${describeValue(x)}`);
}

function checkArray(x: unknown, shape: Shape, path: string): void {
  if (x === null || typeof x !== 'object' || arrayKind(x) !== true) throw Errors.invalid(`${path} must be an array, got ${describeValue(x)}`);
  const list = x as unknown[];
  for (let i = 0; i < list.length; i++) checkShape(list[i], shape, `${path}[${i}]`);
}

function checkObject(x: unknown, shape: { readonly [key: string]: Shape }, path: string): void {
  if (x === null || typeof x !== 'object' || arrayKind(x) !== false) throw Errors.invalid(`${path} must be an object, got ${describeValue(x)}`);
  for (const [key, s] of Object.entries(shape)) {
    if (key === '*') {
      for (const [k, v] of Object.entries(x)) checkShape(v, s, `${path}[${JSON.stringify(k)}]`);
      continue;
    }
    const optional = key.endsWith('?');
    const k = optional ? key.slice(0, -1) : key;
    const v = (x as Record<string, unknown>)[k];
    if (v === undefined) {
      if (optional) continue;
      throw Errors.invalid(`${path} lacks \`${k}\``);
    }
    checkShape(v, s, `${path}.${k}`);
  }
}
