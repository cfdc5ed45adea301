/**
 * The programs in examples/: each compiled one runs as a stranger would run it (`node
 * dist/examples/x.js`), within a time limit, exits 0 and prints the line that shows it worked. An
 * example without an entry here fails the suite, so none goes untested. The README's TypeScript
 * snippets are excerpts of these programs, checked line by line, so they cannot rot either.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOURCES = fileURLToPath(new URL('../examples/', import.meta.url));
const README = fileURLToPath(new URL('../README.md', import.meta.url));
const COMPILED = fileURLToPath(new URL('../dist/examples/', import.meta.url));
/** Generous for programs that take well under a second: a loaded CI machine must not fail them. */
const TIMEOUT_MS = 60_000;

/** Each example, the output line that proves it did what its header says, and any further check of its output. */
const EXPECTED: Record<string, { line: RegExp; check?: (stdout: string) => void }> = {
  'wait-async': { line: /^main: fence signaled, status 1$/m },
  'worker-callbacks': { line: /^owner \(thread \d+\): callback ran here, status 1$/m },
  'sync-file-merge': { line: /^consumer: signaled: 'both' status 1, fences 1,1$/m },
  'publish-handle': {
    line: /^worker: received handle \d+, signaled, status 1$/m,
    check: (stdout) => {
      // The point of the example: a handle wider than 32 bits arrives whole.
      const sent = Number(/^main: published handle (\d+) /m.exec(stdout)?.[1]);
      expect(sent).toBeGreaterThan(2 ** 32);
      expect(Number(/^worker: received handle (\d+),/m.exec(stdout)?.[1])).toBe(sent);
    },
  },
  'dead-worker': { line: /^main: spin lock taken: true, ownerDied: true$/m },
  'piscina-graph': {
    line: /^main: chain of 100 on 2 workers finished, last = 100$/m,
    // Each stage got its inputs' results: the diamond's last stage names the whole graph.
    check: (stdout) => expect(stdout).toMatch(/^main: graph ok, bundle = bundle\(parse\(fetch\), lint\(fetch\)\)$/m),
  },
};

/** Runs `node file`, killed after TIMEOUT_MS; resolves with its exit code (null when killed) and output. */
function runNode(file: string, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd, timeout: TIMEOUT_MS, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const examples = readdirSync(SOURCES)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -'.ts'.length))
  .sort();

describe('examples', () => {
  it('every example has an expected output line here', () => {
    expect(examples.filter((name) => EXPECTED[name] === undefined)).toEqual([]);
    expect(Object.keys(EXPECTED).filter((name) => !examples.includes(name))).toEqual([]);
  });

  it.each(examples)('%s: its header says what it shows and how to run it', (name) => {
    const source = readFileSync(`${SOURCES}${name}.ts`, 'utf8');
    expect(source.startsWith('/**\n * Example: ')).toBe(true);
    expect(source).toContain(`Run: npm run build && node dist/examples/${name}.js`);
    // A copied example must work outside this repository: it names the package, not a path into it.
    expect(source).toMatch(/from 'fencelab';/);
    expect(source).not.toMatch(/from '\.\.?\//);
  });

  it.each(examples)('%s runs, exits 0 and prints what it shows', async (name) => {
    const r = await runNode(`${COMPILED}${name}.js`);
    expect(r.code, `exit code (null: killed after ${TIMEOUT_MS} ms)\n${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(EXPECTED[name].line);
    EXPECTED[name].check?.(r.stdout);
  });
});

/** A snippet line that stands for lines of the example left out. */
const ELISION = '// …';
const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');

/**
 * Whether `snippet` is an excerpt of `source`: its runs of lines between `// …` lines each appear
 * in `source` as consecutive lines (ignoring indentation and blank lines), in the snippet's order.
 */
function isExcerpt(snippet: string, source: string): boolean {
  const src = lines(source);
  let from = 0;
  const runs: string[][] = [[]];
  for (const l of lines(snippet)) {
    if (l === ELISION) runs.push([]);
    else runs[runs.length - 1].push(l);
  }
  for (const run of runs.filter((r) => r.length > 0)) {
    let at = -1;
    for (let i = from; i + run.length <= src.length && at < 0; i++) if (run.every((l, k) => src[i + k] === l)) at = i;
    if (at < 0) return false;
    from = at + run.length;
  }
  return true;
}

describe('README snippets', () => {
  const snippets = [...readFileSync(README, 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  const sources = examples.map((name) => ({ name, text: readFileSync(`${SOURCES}${name}.ts`, 'utf8') }));

  it('the README has TypeScript snippets', () => {
    expect(snippets.length).toBeGreaterThan(0);
  });

  it.each(snippets.map((s, i) => [i + 1, s] as const))('snippet %i is an excerpt of an example, which runs above', (_i, snippet) => {
    expect(sources.filter((s) => isExcerpt(snippet, s.text)).map((s) => s.name), snippet).not.toEqual([]);
  });

  it('the excerpt check rejects lines that are not in the example, or out of order', () => {
    const source = 'a();\n  b();\nc();\nd();\n';
    expect(isExcerpt('a();\nb();\n// …\nd();\n', source)).toBe(true);
    expect(isExcerpt('a();\nc();\n', source)).toBe(false); // a line left out without // …
    expect(isExcerpt('c();\n// …\na();\n', source)).toBe(false);
    expect(isExcerpt('a();\nx();\n', source)).toBe(false);
  });
});
