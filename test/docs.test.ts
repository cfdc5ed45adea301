/**
 * The API reference (`npm run docs`): TypeDoc builds it from src/index.ts with this repository's
 * configuration and plugin, and the doc comments' contract lines (Locking, Threads, Returns,
 * Throws) come out as paragraphs of their own. The configuration fails the build on an exported
 * symbol without a doc comment, so the reference documents every one. And the prose docs (README.md, docs/*.md) point at
 * files that exist and name each symbol with the file that defines it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommentDisplayPart } from 'typedoc';
import { splitContractLines } from '../scripts/typedoc-contract.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

/**
 * Bound of one TypeDoc run: it took 105 s with two busy loops on both cores (20 s quiet), so 3× that;
 * the tests that run it allow a little more than the run.
 */
const TYPEDOC_MS = 300_000;
const TYPEDOC_TEST_MS = TYPEDOC_MS + 30_000;

/** Runs TypeDoc from the repository with `args`, bounded. */
function typedoc(args: string[]) {
  return spawnSync(process.execPath, [TYPEDOC, ...args], { cwd: ROOT, encoding: 'utf8', timeout: TYPEDOC_MS, killSignal: 'SIGKILL' });
}
const text = (t: string): CommentDisplayPart => ({ kind: 'text', text: t });

describe('contract lines', () => {
  it('a label at a line start or after a sentence starts a paragraph, in bold', () => {
    const parts = splitContractLines([
      text('Signals it.\nLocking: takes the fence lock. Threads: any.\nReturns nothing. Throws EBADF.'),
    ]);
    expect(parts).toEqual([
      text('Signals it.\n\n**Locking:** takes the fence lock.\n\n**Threads:** any.\n\n**Returns** nothing.\n\n**Throws** EBADF.'),
    ]);
  });

  it('leaves words inside a sentence, and code, alone', () => {
    const code: CommentDisplayPart = { kind: 'code', text: '`\nReturns`' };
    const parts = [text('what it Returns, and the Threads: it uses'), code];
    expect(splitContractLines(parts)).toEqual(parts);
  });
});

describe('npm run docs', () => {
  it('TypeDoc builds the reference, contract lines rendered as paragraphs', () => {
    const out = mkdtempSync(join(tmpdir(), 'fencelab-docs-'));
    try {
      // The configuration loads the plugin from the build, which `npm test` made.
      const r = typedoc(['--out', out]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('Loaded plugin');
      // Not a warning left: every export documented, every link resolved, every type exported.
      expect(r.stdout + r.stderr).not.toMatch(/warning/i);
      const fence = readFileSync(join(out, 'classes', 'Fence.html'), 'utf8');
      const signal = fence.slice(fence.indexOf('Signals the fence and runs its pending callbacks'));
      expect(signal).toMatch(/^Signals the fence and runs its pending callbacks\.<\/p>\s*<p><strong>Locking:<\/strong> takes the fence lock/);
      expect(signal).toMatch(/<p><strong>Threads:<\/strong> any attached thread/);
      expect(signal).toMatch(/<p><strong>Returns<\/strong> nothing/);
      expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('href="documents/architecture.html"');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, TYPEDOC_TEST_MS);
});

describe('every export documented', () => {
  it('the configuration fails the build on an exported symbol without a doc comment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fencelab-docs-undocumented-'));
    try {
      writeFileSync(join(dir, 'index.ts'), '/** Documented. */\nexport function documented(): void {}\nexport function forgotten(): void {}\n');
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2023', types: [] }, files: ['index.ts'] }),
      );
      // This repository's configuration, pointed at the file above instead of src/index.ts (an
      // options file, not flags: TypeDoc reads the tsconfig named in the options before the flags).
      writeFileSync(
        join(dir, 'typedoc.json'),
        JSON.stringify({ extends: [join(ROOT, 'typedoc.json')], tsconfig: join(dir, 'tsconfig.json'), entryPoints: [join(dir, 'index.ts')], out: join(dir, 'out'), readme: 'none' }),
      );
      const r = typedoc(['--options', join(dir, 'typedoc.json')]);
      expect(r.status, `${r.stdout}\n${r.stderr}`).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/forgotten.*does not have any documentation/);
      expect(r.stdout + r.stderr).not.toMatch(/documented \(Function\).*does not have any documentation/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, TYPEDOC_TEST_MS);
});

/** The prose docs: the README and docs/*.md, repository-relative. */
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
/** A repository path in backticks or a relative link. */
const PATH = /`((?:src|workers|bench|test|scripts|examples|docs)\/[\w./-]*)`|\]\((?:\.\.?\/)?((?:src|workers|bench|test|scripts|examples|docs)\/[^)#\s]*)/g;
/** Built by `npm run docs` and `npm run bench`, not kept in the repository. */
const GENERATED = /^(docs\/api|bench\/results)(\/|$)/;
const SYM = '`[A-Za-z_$][\\w$]*(?:\\.[A-Za-z_$][\\w$]*)?(?:\\(\\))?`';
/**
 * A symbol named with its file: `sym` in `file.ts`, `sym` (`file.ts`), `sym`, `file.ts`, also a
 * list of symbols before the file (`a`, `b` (`file.ts`); `a` / `b` in `file.ts`).
 */
const PAIR = new RegExp(`((?:${SYM}(?:, | / ))*${SYM})(?: in |,? \\(| ?, )\`((?:src|workers|bench|test|scripts|examples)/[\\w./-]+\\.ts)\``, 'g');

/** True when `file`'s text declares `name` (function, class, const, type, a method or field, a defineStruct name). */
function declares(text: string, name: string): boolean {
  const mods = '(?:static\\s+|readonly\\s+|private\\s+|protected\\s+|async\\s+|get\\s+|set\\s+)*';
  return new RegExp(
    [
      `(?:function\\*?|class|const|let|var|interface|type|enum)\\s+${name}\\b`,
      `^\\s+${mods}${name}\\s*(?:<[^>]*>)?\\([^;]*\\{\\s*$`, // a method (a call ends with ';')
      `^\\s+${mods}${name}\\s*[:=]`, // a field
      `defineStruct\\(\\s*'${name}'`,
    ].join('|'),
    'm',
  ).test(text);
}

/** Every .ts file below `dir`. */
function tsTree(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsTree(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * The units of a Markdown text a citation belongs to, each with its first line: a table row, a
 * list item or a paragraph (their lines joined). Code blocks are left out.
 */
function units(md: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let para: { line: number; text: string } | undefined;
  let code = false;
  md.split('\n').forEach((l, i) => {
    const fence = l.trimStart().startsWith('```');
    if (fence) code = !code;
    const row = l.startsWith('|');
    const item = /^\s*(?:[-*]|\d+\.) /.test(l);
    if (fence || code || row || item || l.trim() === '' || l.startsWith('#')) {
      if (para) out.push(para);
      para = undefined;
      if (row && !code) out.push({ line: i + 1, text: l });
      if (item && !code) para = { line: i + 1, text: l };
    } else if (para) para.text += ` ${l}`;
    else para = { line: i + 1, text: l };
  });
  if (para) out.push(para);
  return out;
}

const SOURCES = tsTree(join(ROOT, 'src')).map((f) => readFileSync(f, 'utf8'));

/**
 * In a paragraph, list item or table row that cites files of src/, the plain names in backticks
 * that a file of src/ defines at its top level (a function, a constant, a class; not a method,
 * whose name may be an API word like `put`) and none of the cited files defines: a function moved
 * to another file would leave the prose naming its old one. One line each, with `doc`'s line.
 */
function misplacedCitations(doc: string, md: string): string[] {
  return units(md).flatMap(({ line, text }) => {
    const files = [...text.matchAll(/`(src\/[\w./-]+\.ts)`/g)].map((m) => m[1]).filter((f) => existsSync(join(ROOT, f)));
    if (files.length === 0) return [];
    const cited = files.map((f) => readFileSync(join(ROOT, f), 'utf8'));
    const names = new Set([...text.matchAll(/`([a-z][\w$]*)(?:\(\))?`/g)].map((m) => m[1]));
    return [...names]
      .filter((n) => !cited.some((t) => declares(t, n)) && SOURCES.some((t) => declaresAtTop(t, n)))
      .map((n) => `${doc}:${line} \`${n}\` is in none of ${files.join(', ')}`);
  });
}

/** True when `text` declares `name` at its top level: a function, class or variable (exported or not). */
function declaresAtTop(text: string, name: string): boolean {
  return new RegExp(`^(?:export\\s+)?(?:async\\s+)?(?:function\\*?|class|const|let|var)\\s+${name}\\b`, 'm').test(text);
}

/** Each reference as [doc:line, symbol or '', repository path]. */
function references(): [where: string, sym: string, path: string][] {
  return DOCS.flatMap((doc) =>
    readFileSync(join(ROOT, doc), 'utf8')
      .split('\n')
      .flatMap((line, i) => {
        const where = `${doc}:${i + 1}`;
        const paths = [...line.matchAll(PATH)].map((m): [string, string, string] => [where, '', (m[1] ?? m[2]).replace(/\/$/, '')]);
        const pairs = [...line.matchAll(PAIR)].flatMap((m) =>
          [...m[1].matchAll(/`([^`(]+)(?:\(\))?`/g)].map((s): [string, string, string] => [where, s[1], m[2]]),
        );
        return [...paths, ...pairs];
      }),
  );
}

describe('the prose docs', () => {
  const refs = references();

  it('find references to check (the parser still reads them)', () => {
    expect(refs.filter(([, sym]) => sym !== '').length).toBeGreaterThan(40);
    expect(refs.some(([, sym, path]) => sym === 'releaseFence' && path === 'src/fence/release.ts')).toBe(true);
  });

  it('point only at files and folders of the repository', () => {
    const missing = refs.filter(([, , path]) => !GENERATED.test(path) && !existsSync(join(ROOT, path)));
    expect(missing).toEqual([]);
  });

  it('name each symbol with the file that defines it', () => {
    const wrong = refs.filter(([, sym, path]) => {
      if (sym === '' || !existsSync(join(ROOT, path))) return false;
      const text = readFileSync(join(ROOT, path), 'utf8');
      return !sym.split('.').every((part) => declares(text, part));
    });
    expect(wrong).toEqual([]);
  });

  it('name a function cited beside source files with a file that defines it', () => {
    const wrong = DOCS.flatMap((doc) => misplacedCitations(doc, readFileSync(join(ROOT, doc), 'utf8')));
    expect(wrong).toEqual([]);
  });

  it('catch a function cited beside a file that does not define it', () => {
    const md = '- the last put (`putFence`, `src/fence/core.ts`)\n  frees it.\n\nA `put` in `src/fence/core.ts`.\n';
    expect(misplacedCitations('t.md', md)).toEqual(['t.md:1 `putFence` is in none of src/fence/core.ts']);
  });

  it('list, per layer of the architecture, files that are in its folder and the symbols they define', () => {
    const arch = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
    const rows = [...arch.matchAll(/^\| \w+ \| `(src\/\w+\/)` \|.*\| (.*) \|$/gm)];
    expect(rows.length).toBeGreaterThanOrEqual(10);
    const wrong = rows.flatMap(([, folder, files]) =>
      [...files.matchAll(/`(\w+\.ts)`(?: \(`(\w+)`\))?/g)].flatMap(([, file, sym]) => {
        const path = join(ROOT, folder, file);
        if (!existsSync(path)) return [`${folder}${file}: no such file`];
        return sym !== undefined && !declares(readFileSync(path, 'utf8'), sym) ? [`${folder}${file}: no ${sym}`] : [];
      }),
    );
    expect(wrong).toEqual([]);
  });
});
