/**
 * The shape of the source tree, so that it cannot drift back: no module of src/ takes part in an
 * import cycle, no import runs upward in the layer order of docs/architecture.md, and workers/
 * reaches the library only through its public entry; and no file of src/ outgrows 400 lines, nor
 * a function body 80 (the style rule: small files by concept, short functions). Read from the
 * TypeScript sources with the compiler's parser (no build needed).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

/** One relative import of a file: the file it names (repository-relative .ts path) and whether only types cross it. */
interface Edge {
  to: string;
  typeOnly: boolean;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The relative imports of `file` (import/export … from, and import()), resolved to .ts paths. */
function importsOf(file: string): Edge[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (spec: ts.Expression | undefined, typeOnly: boolean) => {
    if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.'))
      edges.push({ to: relative(ROOT, resolve(dirname(file), spec.text.replace(/\.js$/, '.ts'))), typeOnly });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) {
      const c = n.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      // Erased by tsc: `import type …`, and `import { type A, type B }` with nothing else.
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(n.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(n)) {
      const named = n.exportClause && ts.isNamedExports(n.exportClause) ? n.exportClause.elements : undefined;
      add(n.moduleSpecifier, n.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(n.arguments[0], false);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return edges;
}

const graph = new Map(tsFiles(SRC).map((f) => [relative(ROOT, f), importsOf(f)] as const));

/**
 * The layer order of docs/architecture.md ("Layers and data flow"), lowest first; a module may
 * import its own rank or lower. The arena's rank also holds what the arena uses beside it: the
 * word-level parts of locks/ (futex.ts, owners.ts, layout.ts) and the trace recorder (all of
 * trace/ but the dump walker, which reads every layer and sits on top).
 */
const RANKS: [rank: number, pattern: RegExp][] = [
  [0, /^src\/(errors|timeout)\.ts$/],
  [1, /^src\/(arena\/|locks\/(futex|owners|layout)\.ts$|trace\/(layout|ring|tracer|chrome|chromeexport|chromeparts|snapshot|dump|viewer|shape)\.ts$)/],
  [2, /^src\/locks\//],
  [3, /^src\/fence\//],
  [4, /^src\/containers\//],
  [5, /^src\/sync\//],
  [6, /^src\/runtime\//],
  [7, /^src\/driver\//],
  [8, /^src\/(trace|report)\//],
  [9, /^src\/index\.ts$/],
  [10, /^src\/cli\//],
];

function rankOf(file: string): number {
  const r = RANKS.find(([, p]) => p.test(file));
  if (!r) throw new Error(`${file} is in no layer of the test's order: place it in RANKS`);
  return r[0];
}

/** Every elementary cycle through the graph's strongly connected parts, as one path each (Tarjan). */
function cycles(edges: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const part: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        part.push(w);
      } while (w !== v);
      if (part.length > 1 || (edges.get(v) ?? []).includes(v)) found.push(part.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the source tree', () => {
  it('has no import cycle in src/ (the imports that remain in the compiled modules)', () => {
    const runtime = new Map([...graph].map(([f, es]) => [f, es.filter((e) => !e.typeOnly).map((e) => e.to)] as const));
    expect(cycles(runtime)).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
    expect(cycles(new Map([['a', ['a']]]))).toEqual([['a']]);
  });

  it('has no import running upward in the layer order, types included', () => {
    const upward = [...graph].flatMap(([f, es]) =>
      es.filter((e) => e.to.startsWith('src/') && rankOf(e.to) > rankOf(f)).map((e) => `${f} → ${e.to}`),
    );
    expect(upward).toEqual([]);
  });

  it('leaves src/ only from the CLI, to the engine of workers/ it runs', () => {
    const out = [...graph].flatMap(([f, es]) => es.filter((e) => !e.to.startsWith('src/')).map((e) => `${f} → ${e.to}`));
    expect(out.filter((x) => !/^src\/cli\/[^ ]+ → workers\//.test(x))).toEqual([]);
  });

  it('lets workers/ use the library only through its public entry, src/index.ts', () => {
    const into = tsFiles(join(ROOT, 'workers')).flatMap((f) =>
      importsOf(f)
        .filter((e) => e.to.startsWith('src/') && e.to !== 'src/index.ts')
        .map((e) => `${relative(ROOT, f)} → ${e.to}`),
    );
    expect(into).toEqual([]);
  });
});

/** Longest a file of src/ may be, in lines (the style rule: small files by concept, ≤ ~400 lines). */
const MAX_FILE_LINES = 400;
/** Longest a function's body may be, in lines from its `{` to its `}` (the style rule: ≤ ~80 lines). */
const MAX_FUNCTION_LINES = 80;

/** Lines of every function-like body (functions, methods, accessors, constructors, arrows with a block) of `text`. */
function functionLengths(file: string, text: string): { name: string; line: number; lines: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; line: number; lines: number }[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.body.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(n.body.end).line;
      const name = n.name && !ts.isComputedPropertyName(n.name) ? n.name.getText(sf) : '(anonymous)';
      found.push({ name, line: first + 1, lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

describe('the size of the source', () => {
  const sources = tsFiles(SRC).map((f) => ({ file: relative(ROOT, f), text: readFileSync(f, 'utf8') }));

  it(`keeps every file of src/ to ${MAX_FILE_LINES} lines`, () => {
    const long = sources.map(({ file, text }) => ({ file, lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0) }));
    expect(long.filter((f) => f.lines > MAX_FILE_LINES).map((f) => `${f.file}: ${f.lines} lines`)).toEqual([]);
  });

  it(`keeps every function body of src/ to ${MAX_FUNCTION_LINES} lines`, () => {
    const long = sources.flatMap(({ file, text }) =>
      functionLengths(file, text).filter((f) => f.lines > MAX_FUNCTION_LINES).map((f) => `${file}:${f.line} ${f.name}: ${f.lines} lines`),
    );
    expect(long).toEqual([]);
  });

  it('measures functions, methods, accessors and arrows, nested ones on their own', () => {
    const text = [
      'function outer() {', '  const inner = () => {', '    return 1;', '  };', '  return inner();', '}',
      'class C {', '  get x() {', '    return 2;', '  }', '  m(): void {}', '}',
      'const f = (a: number) => a + 1;',
    ].join('\n');
    expect(functionLengths('t.ts', text)).toEqual([
      { name: 'outer', line: 1, lines: 6 },
      { name: '(anonymous)', line: 2, lines: 3 },
      { name: 'x', line: 8, lines: 3 },
      { name: 'm', line: 11, lines: 1 },
      { name: '(anonymous)', line: 13, lines: 1 },
    ]);
  });
});
