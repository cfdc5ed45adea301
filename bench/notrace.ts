/**
 * A build without the tracing code, for the "tracing off" rows: what a tracepoint costs when no
 * session records is measured against the same operation in a copy of the compiled library whose
 * tracepoints are gone, loaded beside it in the same process (two copies are two sets of
 * functions: neither's type feedback or inlining touches the other's).
 *
 * The copy is dist/src and dist/workers with every tracepoint's condition, `tracing(i32, TC_X)` or,
 * on the hot paths, the same test written inline, `i32[TH_FLAGS] & TC_X` (on the fence hot paths
 * with the literals of src/fence/hot.ts, which tsc writes as numbers each followed by a comment
 * naming FH.TH_FLAGS or FH.TC_X), replaced by the literal `false`. V8's bytecode generator emits nothing for `if (false) …`, so the
 * stripped functions have the bytecode size, and hence the inlining decisions, of code that never
 * had the tracepoint. It sits inside dist/ so that the copy resolves its packages as the original.
 */
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** dist/, from this file's compiled place (dist/bench/notrace.js). */
const DIST = fileURLToPath(new URL('..', import.meta.url));

/**
 * A tracepoint's condition: a call of `tracing` (not its declaration; its arguments hold no
 * parentheses), or its inline form. Either, left anywhere in the copy, fails it (LEFT).
 */
const TRACEPOINT = /(?<!function )\btracing\([^()]*\)|\bi32\[TH_FLAGS\] & TC_[A-Z_]+|\bi32\[\d+ \/\* \w+\.TH_FLAGS \*\/\] & \d+ \/\* \w+\.TC_[A-Z_]+ \*\//g;
const LEFT = /(?<!function )\btracing\(|\[TH_FLAGS\] & TC_|\.TH_FLAGS \*\/\] & /;

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

/**
 * Writes the copy without tracepoints to a fresh directory of dist/ and returns it. Throws when it
 * finds no tracepoint to strip, or one it cannot (a figure against an unstripped copy would be a lie).
 */
export function buildNoTraceCopy(): string {
  const root = join(DIST, `.notrace-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  let stripped = 0;
  for (const part of ['src', 'workers']) {
    // The compiled modules only: declarations and source maps are two thirds of dist's files, and
    // nothing loads them (copying and removing them cost a loaded machine ~1.5 s).
    cpSync(join(DIST, part), join(root, part), { recursive: true, filter: (p) => p.endsWith('.js') || statSync(p).isDirectory() });
    for (const file of jsFiles(join(root, part))) {
      const text = readFileSync(file, 'utf8');
      const out = text.replace(TRACEPOINT, () => {
        stripped++;
        return 'false';
      });
      if (LEFT.test(out)) throw new Error(`notrace copy: a tracepoint in ${file} has a shape this script cannot strip`);
      if (out !== text) writeFileSync(file, out);
    }
  }
  if (stripped === 0) throw new Error('notrace copy: no tracepoint found in dist/src (was the library built?)');
  return root;
}

/** Removes a copy made by {@link buildNoTraceCopy}. */
export function removeNoTraceCopy(root: string): void {
  rmSync(root, { recursive: true, force: true });
}

/** The package entry of the copy at `root`. */
export async function loadNoTraceCopy(root: string): Promise<typeof import('../src/index.js')> {
  return (await import(pathToFileURL(join(root, 'src', 'index.js')).href)) as typeof import('../src/index.js');
}
