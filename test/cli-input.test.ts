/**
 * The fencelab command's answers to bad input: a clean one-line message and exit code 2, before
 * anything runs — malformed dump files, output paths that cannot be written, unknown options — and
 * the small promises of its help (--version).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Arena } from '../src/index.js';
import { renderDemo, type DemoReport } from '../src/cli/demo.js';
import { runBench, suiteOptionArgs, traceSamplePath, type SuiteRunner } from '../src/cli/bench.js';
import { REPORT_FILE, TRACE_SAMPLE_FILE } from '../src/report/html.js';
import { RESULTS_DIR, RUN_FORMAT, RUN_VERSION } from '../src/report/schema.js';
import { outputsRefusal } from '../src/cli/outputs.js';
import { timelinePath } from '../src/cli/tracefile.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
/** One short child (a refused option, a help text, a small run) on a loaded 2-core machine. */
const SHORT_MS = 60_000;

/** The environment without npm's variables (as a plain `node dist/src/cli/main.js` has it). */
const PLAIN_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));

function run(args: string[], timeoutMs = SHORT_MS, env: NodeJS.ProcessEnv = PLAIN_ENV) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs, env });
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

describe('an existing file is replaced only when fencelab wrote it', () => {
  const foreign = join(dir, 'notes.txt');
  const page = join(dir, 'page.html');
  const cases: [string[], string][] = [
    [['demo', '--ops', '100', '--trace', foreign], '--trace'],
    [['stress', '--ops', '10', '--hang-dump', page], '--hang-dump'],
    [['bench', '--suite', 'chain', '--json', foreign], '--json'],
    [['bench', '--suite', 'chain', '--html', page], '--html'],
  ];
  it('refuses another file (exit code 2, before anything runs) and leaves it as it was', () => {
    writeFileSync(foreign, 'precious\n');
    writeFileSync(page, '<html><title>my page</title></html>\n');
    for (const [args, option] of cases) {
      const r = run(args);
      expectRefused(r, new RegExp(`${option}: .* was not written by fencelab; .* --force`), args.join(' '));
      expect(r.stdout, args.join(' ')).toBe('');
    }
    expect(readFileSync(foreign, 'utf8')).toBe('precious\n');
    expect(readFileSync(page, 'utf8')).toBe('<html><title>my page</title></html>\n');
  }, 4 * SHORT_MS + 10_000);

  it('checks the page written next to a trace too', () => {
    const trace = join(dir, 'side.json');
    writeFileSync(join(dir, 'side.html'), 'not ours\n');
    expectRefused(run(['demo', '--ops', '100', '--trace', trace]), /--trace \(its timeline page\): .*side\.html/, 'timeline page');
    expect(existsSync(trace)).toBe(false);
  }, SHORT_MS + 10_000);

  it('replaces its own trace, page, run file and dump, an empty file, and anything with --force', () => {
    const trace = join(dir, 'own.json');
    expect(run(['demo', '--ops', '100', '--trace', trace]).code).toBe(0);
    const r = run(['demo', '--ops', '100', '--trace', trace]); // both files are fencelab's now
    expect(r.code, r.stderr).toBe(0);
    const a = Arena.create({ bytes: 1 << 20 });
    const dump = join(dir, 'dump.json');
    writeFileSync(dump, JSON.stringify(a.describe('outputs test'), null, 1));
    const runFile = join(dir, 'run.json');
    writeFileSync(runFile, JSON.stringify({ format: RUN_FORMAT, version: RUN_VERSION }, null, 2));
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, '');
    const outputs = [trace, timelinePath(trace), dump, runFile, empty].map((file) => ({ option: '--x', file }));
    expect(outputsRefusal(outputs, false)).toBeNull();
    expect(outputsRefusal([{ option: '--x', file: dir }], true)).toMatch(/is a directory/);
    const f = run(['demo', '--ops', '100', '--trace', foreign, '--force']);
    expect(f.code, f.stderr).toBe(0);
    expect(readFileSync(foreign, 'utf8')).toMatch(/^\{"traceEvents":/);
  }, 3 * SHORT_MS + 10_000);
});

describe('an empty file name and the help of an unknown command', () => {
  it('are one line and exit code 2 naming the mistake', () => {
    expectRefused(run(['inspect', '']), /inspect needs a dump file name, got an empty string/, 'inspect ""');
    expectRefused(run(['bench', '--baseline', '']), /--baseline needs a file name/, 'bench --baseline ""');
    expectRefused(run(['help', 'bogus']), /unknown command 'bogus'/, 'help bogus');
  }, 3 * SHORT_MS + 10_000);
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

describe('fencelab inspect --pid and a stale announcement', () => {
  it('refuses (exit code 2) to signal a live process that is not the stress that wrote the file, and leaves it running', async () => {
    const announceDir = mkdtempSync(join(dir, 'announce-'));
    const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    try {
      const pid = sleeper.pid!;
      // A stale file: written by a stress that ended (no start time, or another process's).
      for (const text of ['node dist/src/cli/main.js stress\n', 'node dist/src/cli/main.js stress\nstart-time 1\n']) {
        writeFileSync(join(announceDir, `fencelab-${pid}.inspect`), text);
        const env = { ...PLAIN_ENV, TMPDIR: announceDir };
        expectRefused(run(['inspect', '--pid', String(pid)], SHORT_MS, env), new RegExp(`process ${pid} is not the fencelab stress that wrote`), text);
        expectRefused(run(['inspect'], SHORT_MS, env), /no fencelab stress is running/, `${text} (no --pid)`);
      }
      expect(sleeper.exitCode).toBeNull();
      expect(sleeper.signalCode).toBeNull();
      expect(() => process.kill(pid, 0)).not.toThrow();
    } finally {
      sleeper.kill('SIGKILL');
    }
  }, 4 * SHORT_MS + 10_000);
});

describe('fencelab stress summary', () => {
  it('explains the callbacks not added in --help', () => {
    const r = run(['stress', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/callbacks "not added" are addCallback calls that found the fence already signaled/);
  }, SHORT_MS + 10_000);

  it('prints a replay line that runs where it ran: node and the file, or npx under npm', () => {
    const args = ['stress', '--ops', '50', '--exporters', '1', '--importers', '1', '--kill-rate', '0', '--seed', 'inv', '--json'];
    const plain = run(args, 2 * SHORT_MS);
    expect(plain.code, plain.stderr).toBe(0);
    const main = MAIN.startsWith(process.cwd()) ? MAIN.slice(process.cwd().length + 1) : MAIN;
    expect((JSON.parse(plain.stdout) as { replay: string }).replay).toMatch(new RegExp(`^node ${main.replace(/[.\\/]/g, '\\$&')} stress --ops 50 `));
    const npm = run(args, 2 * SHORT_MS, { ...PLAIN_ENV, npm_command: 'exec' });
    expect(npm.code, npm.stderr).toBe(0);
    expect((JSON.parse(npm.stdout) as { replay: string }).replay).toMatch(/^npx fencelab stress --ops 50 /);
  }, 4 * SHORT_MS + 10_000);
});

describe('fencelab demo --json', () => {
  it('reports each run\'s real operation count in its config, and the text says what each borrowed run did', () => {
    const r = run(['demo', '--ops', '100', '--seed', 's', '--json'], 2 * SHORT_MS);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { runs: { ops: number; config: { ops: number; opsPerExporter: number } }[] };
    for (const x of report.runs) {
      expect(x.config.opsPerExporter).toBe(100);
      expect(x.config.ops).toBe(100);
      expect(x.ops).toBe(100);
    }
    // Per run, with that run's own figures: no sum across both borrowed runs.
    const [bs, b] = (report as unknown as DemoReport).runs;
    const text = renderDemo(report as unknown as DemoReport);
    expect(text).toContain(`borrowed + sanitizer: the sanitizer caught ${bs!.uafCaught} of ${bs!.staleAccesses} stale lock accesses`);
    expect(text).toContain(`${bs!.hangs} lock or fence waits timed out`);
    expect(text).toContain(`borrowed: the same ${b!.staleAccesses} stale accesses broke mutual exclusion ${b!.meViolations} times`);
    expect(text).not.toMatch(/across both runs/);
  }, 2 * SHORT_MS + 10_000);
});

describe('fencelab bench output files', () => {
  it('names the traced sample after --html (trace.json only in the results directory)', () => {
    expect(traceSamplePath('/x/before.html')).toBe('/x/before.trace.json');
    expect(traceSamplePath('/x/report')).toBe('/x/report.trace.json');
    expect(traceSamplePath(join(RESULTS_DIR, REPORT_FILE))).toBe(join(RESULTS_DIR, TRACE_SAMPLE_FILE));
  });

  it('with --json, prints no path of the suites\' temporary files (deleted at the end)', () => {
    const out = mkdtempSync(join(dir, 'bench-'));
    const outs: string[] = [];
    const runner: SuiteRunner = (_suite, args) => {
      expect(args).toContain('--gathered'); // the suite leaves out its own results line
      outs.push(args[args.indexOf('--out') + 1]!);
      return 'fake suite: not run';
    };
    const log: string[] = [];
    runBench({ suites: ['chain'], quick: true, seed: 1, json: join(out, 'before.json'), html: join(out, 'before.html') }, runner, (l) => log.push(l));
    expect(outs).toHaveLength(1);
    expect(existsSync(outs[0]!)).toBe(false);
    expect(log.join('\n')).not.toContain(outs[0]!);
  }, SHORT_MS);
});

describe('fencelab bench and the suites\' own options', () => {
  it('forwards an option when every selected suite takes it, and refuses it otherwise', () => {
    expect(suiteOptionArgs(new Map<string, number | true>([['--goal-rounds', 3]]), ['contention'])).toEqual(['--goal-rounds', '3']);
    expect(suiteOptionArgs(new Map<string, number | true>([['--rounds', 3], ['--ms', 10]]), ['alloc', 'alloc'])).toEqual(['--rounds', '3', '--ms', '10']);
    expect(suiteOptionArgs(new Map<string, number | true>([['--main-spin', true]]), ['wake'])).toEqual(['--main-spin']);
    expect(() => suiteOptionArgs(new Map<string, number | true>([['--goal-rounds', 3]]), ['contention', 'alloc'])).toThrow(
      /--goal-rounds is an option of the contention suite only, not of alloc/,
    );
    const calls: string[][] = [];
    const runner: SuiteRunner = (_suite, args) => {
      calls.push(args);
      return 'fake suite: not run';
    };
    const out = mkdtempSync(join(dir, 'bench-opts-'));
    runBench({ suites: ['alloc'], quick: true, seed: 1, json: join(out, 'a.json'), html: join(out, 'a.html'), suiteOptions: ['--rounds', '3', '--ms', '10'] }, runner, () => {});
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(-4)).toEqual(['--rounds', '3', '--ms', '10']);
  }, SHORT_MS);

  it('the command refuses an option no selected suite takes (exit code 2) and lists them in bench --help', () => {
    expectRefused(run(['bench', '--suite', 'alloc', '--goal-rounds', '3']), /--goal-rounds is an option of the contention suite only, not of alloc/, 'alloc --goal-rounds');
    expectRefused(run(['bench', '--rounds', '3']), /--rounds is an option of the alloc, wake, piscina suites only/, 'all suites --rounds');
    const help = run(['bench', '--help']);
    expect(help.code, help.stderr).toBe(0);
    for (const name of ['--ms', '--rounds', '--reps', '--goal-rounds', '--tasks', '--linger', '--main-spin', '--samples']) expect(help.stdout).toContain(name);
  }, 4 * SHORT_MS);

  it('a suite program names its options in its usage line', () => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../dist/bench/alloc.bench.js', import.meta.url)), '--bogus'], { encoding: 'utf8', timeout: SHORT_MS });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/usage: node dist\/bench\/alloc\.bench\.js .*\[--ms N\] \[--rounds N\]/);
  }, SHORT_MS + 10_000);
});
