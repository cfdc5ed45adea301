/**
 * The one helper every layout file uses: it assigns word offsets to a struct's fields from their
 * sizes, in order, so that no offset is ever typed by hand (and so never typed twice).
 *
 * A field is `name: words` (1 for an Int32 word, 2 for a 64-bit value, n for an inline array). A
 * 64-bit field is written `name: WORDS64` and lands on an even word (8-byte aligned when the struct
 * starts 8-byte aligned, as every block payload does). Layouts nest: a struct that extends another
 * (a sw_sync point extends a fence) starts at the other's `END`.
 */

/** Size of a 64-bit field (BigInt64 / Float64): two words, 8-byte aligned. */
export const WORDS64 = { words: 2, align: 2 } as const;

export type FieldSize = number | { readonly words: number; readonly align: number };

export interface StructOptions {
  /** Word index of the first field (default 0): the end of the struct this one extends. */
  readonly base?: number;
  /** Expected end (`base` + size in words): a mismatch throws at module load. */
  readonly end?: number;
  /** Highest end allowed (for structs placed in a reserved area). */
  readonly limit?: number;
}

/** The struct's field offsets by name, plus `END`: the word just past its last field. */
export type StructLayout<S> = { readonly [K in keyof S]: number } & { readonly END: number };

/** One field as {@link defineStruct} placed it. */
export interface FieldRecord {
  readonly name: string;
  /** Word offset (the value the layout exports for the field). */
  readonly offset: number;
  readonly words: number;
}

/** One struct as {@link defineStruct} laid it out: what the layout documentation is generated from. */
export interface StructRecord {
  readonly name: string;
  /** Word offset of the first field (the end of the struct this one extends, or 0). */
  readonly base: number;
  /** Word just past the last field. */
  readonly end: number;
  readonly fields: readonly FieldRecord[];
}

const registry: StructRecord[] = [];

/**
 * Every struct defined so far in this thread, in definition order (module load order). Only the
 * layout modules loaded so far are in it: a tool that needs them all imports every layout module
 * first (see scripts/layout-doc.ts). Not part of the package's API.
 */
export function definedStructs(): readonly StructRecord[] {
  return registry;
}

/**
 * Lays out `fields` in order from `options.base`. Throws at module load (so every test sees it)
 * when the size is not the expected one or overflows its reserved area.
 */
export function defineStruct<const S extends Record<string, FieldSize>>(name: string, fields: S, options: StructOptions = {}): StructLayout<S> {
  const base = options.base ?? 0;
  let at = base;
  const out: Record<string, number> = {};
  const placed: FieldRecord[] = [];
  for (const [field, size] of Object.entries(fields)) {
    const words = typeof size === 'number' ? size : size.words;
    const align = typeof size === 'number' ? 1 : size.align;
    if (!Number.isInteger(words) || words < 0) throw new Error(`layout ${name}.${field}: bad size ${words}`);
    if (at % align !== 0) throw new Error(`layout ${name}.${field}: word ${at} is not ${align}-word aligned`);
    out[field] = at;
    placed.push(Object.freeze({ name: field, offset: at, words }));
    at += words;
  }
  if (options.end !== undefined && at !== options.end) throw new Error(`layout ${name}: ends at word ${at}, expected ${options.end}`);
  if (options.limit !== undefined && at > options.limit) throw new Error(`layout ${name}: ends at word ${at}, past its limit ${options.limit}`);
  out.END = at;
  registry.push(Object.freeze({ name, base, end: at, fields: Object.freeze(placed) }));
  return Object.freeze(out) as StructLayout<S>;
}
