/**
 * The API reference (`npm run docs`): TypeDoc builds it from src/index.ts with this repository's
 * configuration and plugin, and the doc comments' contract lines (Locking, Threads, Returns,
 * Throws) come out as paragraphs of their own. The configuration fails the build on an exported
 * symbol without a doc comment, so the reference documents every one.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommentDisplayPart } from 'typedoc';
import { splitContractLines } from '../scripts/typedoc-contract.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

/** Runs TypeDoc from the repository with `args`, bounded. */
function typedoc(args: string[]) {
  return spawnSync(process.execPath, [TYPEDOC, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
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
  }, 150_000);
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
  }, 150_000);
});
