/**
 * The fencelab command's answers to bad input: a clean one-line message and exit code 2, before
 * anything runs — malformed dump files, output paths that cannot be written, unknown options — and
 * the small promises of its help (--version).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Arena } from '../src/index.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
/** One short child (a refused option, a help text, a small run) on a loaded 2-core machine. */
const SHORT_MS = 60_000;

function run(args: string[], timeoutMs = SHORT_MS) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'fencelab-cli-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Expects exit code 2 with one `error:` line naming `message`, and no stack. */
function expectRefused(r: ReturnType<typeof run>, message: RegExp, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toMatch(/^error: /);
  expect(lines[0], what).toMatch(message);
  expect(r.stderr, what).not.toMatch(/\n\s+at /);
}

describe('fencelab inspect of a malformed dump', () => {
  const a = Arena.create({ bytes: 1 << 20 });
  const good = a.describe('cli-input test');
  const cases: [string, unknown][] = [
    ['threads-empty-object', { ...good, threads: [{}] }],
    ['fences-null', { ...good, fences: [null] }],
    ['not-a-dump', { hello: 1 }],
  ];

  it('a well-formed dump prints', () => {
    const file = join(dir, 'good.json');
    writeFileSync(file, JSON.stringify(good));
    const r = run(['inspect', file]);
    expect(r.code, r.stderr).toBe(0);
  }, SHORT_MS + 10_000);

  it('each malformed dump is one line and exit code 2, no stack', () => {
    for (const [name, dump] of cases) {
      const file = join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(dump));
      expectRefused(run(['inspect', file]), new RegExp(file.replace(/[.\\/]/g, '\\$&')), name);
    }
  }, 3 * SHORT_MS + 10_000);
});

describe('output paths are checked before anything runs', () => {
  const missing = join(dir, 'no-such-dir', 'x.json');
  const cases: string[][] = [
    ['demo', '--ops', '100', '--trace', missing],
    ['stress', '--ops', '10', '--trace', missing],
    ['stress', '--ops', '10', '--hang-dump', missing],
    ['bench', '--suite', 'chain', '--json', missing],
    ['bench', '--suite', 'chain', '--html', missing],
  ];
  it('a directory that does not exist is exit code 2 naming it, and nothing is written', () => {
    for (const args of cases) {
      const r = run(args);
      expectRefused(r, /directory .*no-such-dir does not exist/, args.join(' '));
      expect(r.stdout, args.join(' ')).toBe(''); // nothing ran: no table, no progress
    }
  }, 5 * SHORT_MS + 10_000);
});

describe('fencelab --version and --help', () => {
  it('--version prints package.json\'s version', () => {
    const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const r = run(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  }, SHORT_MS + 10_000);

  it('--help says that no command runs the full demo', () => {
    const r = run(['--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/With no command, fencelab runs the full demo/);
  }, SHORT_MS + 10_000);
});

describe('fencelab demo --json', () => {
  it('reports each run\'s real operation count in its config', () => {
    const r = run(['demo', '--ops', '100', '--seed', 's', '--json'], 2 * SHORT_MS);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { runs: { ops: number; config: { ops: number; opsPerExporter: number } }[] };
    for (const x of report.runs) {
      expect(x.config.opsPerExporter).toBe(100);
      expect(x.config.ops).toBe(100);
      expect(x.ops).toBe(100);
    }
  }, 2 * SHORT_MS + 10_000);
});
