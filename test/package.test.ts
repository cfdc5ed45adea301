/**
 * The package as a user gets it: `npm pack` of the built tree, installed into an empty project in a
 * temporary directory, then used there the ways a user would — ESM import with types under strict
 * tsc (node16 resolution), `require` from CommonJS, the `fencelab` command, and an example copied
 * from examples/ unchanged. Also what must not ship: benchmarks, tests, scripts, test-only workers,
 * and piscina or chart.js, which only some users need; and what the published types must not offer:
 * constructors and raw word indices that would let a caller skip the handle checks.
 *
 * Bounded: every child process has a time limit. The install reaches the npm registry only for
 * what npm's cache lacks (--prefer-offline).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const EXAMPLE = 'wait-async';

/**
 * The environment for npm in the temporary project: without the npm_* variables of the `npm test`
 * that runs this suite (npm_config_local_prefix among them would point the install back at this
 * repository), but with the ones that say where the cache and registry are.
 */
const KEEP = /^npm_config_(cache|registry|userconfig|globalconfig|cafile|proxy|https_proxy|noproxy|strict_ssl)$/i;
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || KEEP.test(k)));

/*
 * Bounds, for a loaded machine (two busy loops on both cores took a strict tsc 58 s, the pack and
 * install 26 s): each child about 3× what it took there; each test or hook the sum of its children
 * plus a margin, so a child that hangs fails with its own ETIMEDOUT rather than the test's timeout.
 */
/** A short child (node on a file, npm pack, the command's --help). */
const RUN_MS = 60_000;
/** npm install of the packed tarball. */
const INSTALL_MS = 150_000;
/** A strict tsc over the app and the library's declarations. */
const TSC_MS = 240_000;
const MARGIN_MS = 30_000;

function run(cmd: string, args: string[], cwd: string, timeoutMs = RUN_MS): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (r.error) throw r.error; // ETIMEDOUT, ENOENT: say so instead of a bare null status
  return r;
}
const output = (r: SpawnSyncReturns<string>) => `exit ${r.status}\n${r.stdout}\n${r.stderr}`;

/** A strict tsconfig (node16 resolution) for `files` in the temporary project, fencelab's declarations checked. */
function strictConfig(files: string[]): string {
  return JSON.stringify({
    compilerOptions: {
      strict: true,
      module: 'node16',
      moduleResolution: 'node16',
      target: 'es2022',
      outDir: 'out',
      // fencelab's declarations are checked (they must compile without the optional peers, as a
      // user with skipLibCheck off compiles them); TypeScript's own lib files are not.
      skipLibCheck: false,
      skipDefaultLibCheck: true,
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')], // this repository's @types/node: no extra install
    },
    files,
  });
}

/**
 * Internal members a user file must not reach, one per line: constructors that would build a view
 * without the handle checks, raw word indices and the handle-level hooks behind the public methods.
 */
const INTERNAL_USES = [
  'new Fence(arena, 0);',
  'Fence.view(arena, 0);',
  'fence.fw;',
  'fence.addWake(0);',
  'fence.addShared(0, 0);',
  'fence.flagsIndex;',
  'cb.node;',
  'cb.generation;',
  'arena.i32;',
  'arena.i64;',
  'arena.f64;',
  'arena.slot;',
  'arena.me;',
  'arena.slotBase;',
  'arena.lockKindId;',
  'arena.cacheBase;',
  'arena.heapStartW;',
  'arena.heapEndW;',
  'arena.liveTag;',
  'arena.freedTag;',
  'arena.handleOf(0);',
  "arena.resolve(0, 0, 'x');",
  'arena.payloadBytes(0);',
  'arena.generationAt(0);',
  'arena.isLive(0, 0);',
  'arena.allocBlock(64, 1);',
  'arena.freeBlock(0);',
  "arena.checkAccess(0, 0, 'x', 0);",
  'arena.slotWord(0);',
  'arena.walk(() => {});',
  'arena.slotsOfThread(0);',
  'arena.reapSlot(1);',
  'lock.index;',
  'lock.kindId;',
  'driver.dw;',
  'op.ow;',
  'op.gen;',
  'new Operation(driver, 0, 0, fence);',
  "new FenceMemory(arena, 'array', 1, 0, 0);",
  "memory.take(arena, 'array');",
  "new FencePool(arena, { filename: 'x.js' });",
  'pool.sw;',
  'new Tracer(arena);',
  'new Dispatcher(arena, () => {});',
];

let dir = '';
let app = '';
let files: string[] = [];
/** The `fencelab` command as npm linked it into the project. */
let bin = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fencelab-pack-'));
  // The suite runs after the build; --ignore-scripts keeps pack from doing anything but packing.
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  expect(pack.status, output(pack)).toBe(0);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  files = info.files.map((f) => f.path);
  app = join(dir, 'app');
  bin = join(app, 'node_modules', '.bin', 'fencelab');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, info.filename)], app, INSTALL_MS);
  expect(install.status, output(install)).toBe(0);
}, RUN_MS + INSTALL_MS + MARGIN_MS);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm package', () => {
  it('ships the library, its declarations, the command and its worker, the docs and examples the README links, and nothing else of the repository', () => {
    for (const f of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/workers/exporter.js', 'dist/workers/importer.js', 'dist/workers/board.js'])
      expect(files).toContain(f);
    // Every relative link of the README resolves inside the package (an npm page or node_modules/fencelab).
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const [, target] of readme.matchAll(/\]\(((?:docs|examples)\/[^)#]+)/g)) expect(files, target).toContain(target);
    const stray = files.filter((f) => !/^(package\.json|README\.md|docs\/[a-z-]+\.md|examples\/[a-z-]+\.ts|dist\/src\/.*|dist\/workers\/[a-z-]+\.(js|js\.map|d\.ts|d\.ts\.map))$/.test(f));
    expect(stray).toEqual([]);
  });

  it('installs only what the library and its command need: no piscina, no chart.js', () => {
    const nm = join(app, 'node_modules');
    for (const dep of ['commander', 'cli-progress', 'seedrandom']) expect(existsSync(join(nm, dep)), dep).toBe(true);
    for (const absent of ['piscina', 'chart.js', 'tinybench', 'vitest', 'typescript']) expect(existsSync(join(nm, absent)), absent).toBe(false);
  });

  it('ESM with types: a strict tsc (node16 resolution, libraries checked) compiles a user file and every example, copied unchanged; the file and an example run', () => {
    writeFileSync(
      join(app, 'use.ts'),
      `import { Arena, Fence, FenceError, type FenceCallback } from 'fencelab';
const arena: Arena = Arena.create({ bytes: 1 << 20 });
const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
let ran = 0;
const cb: FenceCallback | null = fence.addCallback((f: Fence) => { ran += f.status(); });
// Never called: only the compiler looks at it.
// @ts-expect-error seqno is a number: the declarations are real types, not any
const typed = () => Fence.create(arena, { context: 1, seqno: 'one' });
void typed;
fence.signal();
const waited: boolean = await fence.waitAsync(1000);
fence.put();
console.log(\`esm: callback \${cb !== null ? ran : -1}, waited \${waited}, clean \${arena.check().ok}, \${new FenceError('EINVAL', 'x').errno}\`);
`,
    );
    const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.ts'));
    expect(examples).toContain(`${EXAMPLE}.ts`);
    for (const f of examples) copyFileSync(join(ROOT, 'examples', f), join(app, f));
    writeFileSync(join(app, 'tsconfig.json'), strictConfig(['use.ts', ...examples]));
    const tsc = run(process.execPath, [TSC, '-p', 'tsconfig.json'], app, TSC_MS);
    expect(tsc.status, output(tsc)).toBe(0);
    const use = run(process.execPath, ['out/use.js'], app);
    expect(use.status, output(use)).toBe(0);
    expect(use.stdout).toContain('esm: callback 1, waited true, clean true, -22');
    const example = run(process.execPath, [`out/${EXAMPLE}.js`], app);
    expect(example.status, output(example)).toBe(0);
    expect(example.stdout).toMatch(/^main: fence signaled, status 1$/m);
  }, TSC_MS + 2 * RUN_MS + MARGIN_MS);

  it('the published types offer no internal member: a strict tsc fails on each use of one', () => {
    const head = [
      `import { Arena, Dispatcher, Driver, Fence, FenceMemory, FencePool, Operation, SpinLock, Tracer, type FenceCallback } from 'fencelab';`,
      'declare const arena: Arena;',
      'declare const fence: Fence;',
      'declare const cb: FenceCallback;',
      'declare const lock: SpinLock;',
      'declare const driver: Driver;',
      'declare const op: Operation;',
      'declare const memory: FenceMemory;',
      'declare const pool: FencePool;',
      // The public members next to them compile: the errors below are the internal ones, not a broken file.
      'void [arena.buffer, arena.capacity, fence.handle, fence.lockWordIndex, cb.fence, lock.ref, driver.handle, op.handle, memory.count, pool.piscina];',
    ];
    writeFileSync(join(app, 'internal.ts'), [...head, ...INTERNAL_USES].join('\n') + '\n');
    writeFileSync(join(app, 'tsconfig.internal.json'), strictConfig(['internal.ts']));
    const tsc = run(process.execPath, [TSC, '-p', 'tsconfig.internal.json', '--noEmit', '--pretty', 'false'], app, TSC_MS);
    expect(tsc.status, output(tsc)).not.toBe(0);
    // One error on every line that uses an internal member, and none anywhere else.
    const errorLines = new Set([...tsc.stdout.matchAll(/^internal\.ts\((\d+),\d+\): error TS(\d+)/gm)].map((m) => Number(m[1])));
    const expected = INTERNAL_USES.map((_, i) => head.length + i + 1);
    expect([...errorLines].sort((a, b) => a - b), output(tsc)).toEqual(expected);
    expect(tsc.stdout).not.toMatch(/node_modules\/fencelab/); // the declarations themselves are sound
  }, TSC_MS + MARGIN_MS);

  it('require() from CommonJS gets the same library', () => {
    writeFileSync(
      join(app, 'use.cjs'),
      `const { Arena, Fence, Errno } = require('fencelab');
const { version } = require('fencelab/package.json');
const arena = Arena.create({ bytes: 1 << 20 });
const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
fence.setError(Errno.EIO);
fence.signal();
console.log('cjs', version, fence.status());
fence.put();
`,
    );
    const r = run(process.execPath, ['use.cjs'], app);
    expect(r.status, output(r)).toBe(0);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(`cjs ${version} -5`);
  });

  it('the fencelab command: --help exits 0, a short stress run uses the shipped worker', () => {
    const help = run('npx', ['--no', '--', 'fencelab', '--help'], app);
    expect(help.status, output(help)).toBe(0);
    expect(help.stdout).toMatch(/^Usage: fencelab /m);
    // The linked bin directly from here on: npx has been checked, and each npx costs a second.
    const stress = run(bin, ['stress', '--ops', '10', '--exporters', '1', '--importers', '1', '--seed', 'pack'], app);
    expect(stress.status, output(stress)).toBe(0);
    expect(stress.stdout).toMatch(/^OK: every invariant held/m);
  });

  it('bench and report, which need the repository or chart.js, say so and exit 2', () => {
    const bench = run(bin, ['bench', '--suite', 'core'], app);
    expect(bench.status, output(bench)).toBe(2);
    expect(bench.stderr).toContain('not part of the installed package');
    const report = run(bin, ['report', '--dir', dir], app);
    expect(report.status, output(report)).toBe(2);
    expect(report.stderr).toContain('npm install chart.js');
  });
});
