/**
 * The programs in examples/: each compiled one runs as a stranger would run it (`node
 * dist/examples/x.js`), within a time limit, exits 0 and prints the line that shows it worked. An
 * example without an entry here fails the suite, so none goes untested.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOURCES = fileURLToPath(new URL('../examples/', import.meta.url));
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
