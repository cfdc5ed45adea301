/**
 * The fencelab command as a child process: exit codes, JSON shape, and counts that are real
 * (the sanitizer's use-after-free count equals the stale accesses the scenario itself made).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { violationsOf, type ScenarioResult } from '../src/cli/scenario.js';
import { renderStress, type StressReport } from '../src/cli/stress.js';
import { LibraryWarnings } from '../src/cli/warnings.js';
import { Errors, warn } from '../src/errors.js';
import type { ArenaDump } from '../src/trace/index.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

/*
 * Bounds for a loaded machine (two busy loops on both cores: a 400-operation demo took 22 s, a
 * refused option 3.5 s): each child several times that, each test its children plus a margin
 * (a loop of refused options: the sum it took there, several times over).
 */
/** A command that refuses its options, or prints its help. */
const SHORT_MS = 60_000;
/** A demo or stress run. */
const RUN_MS = 150_000;

function run(args: string[], timeoutMs = RUN_MS) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('fencelab demo', () => {
  it('reproduces the bug with borrowed locks and is clean with inline locks (JSON)', () => {
    const r = run(['demo', '--json', '--ops', '400', '--seed', 'cli-test']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.runs.map((x: { label: string }) => x.label)).toEqual(['borrowed + sanitizer', 'borrowed', 'inline + sanitizer', 'inline']);
    const [bs, b, is, i] = report.runs;
    for (const x of report.runs) {
      expect(x.ops).toBe(400);
      expect(x.fences).toBe(400);
      expect(x.signaled).toBe(400);
    }
    // Every importer lock through a borrowed fence happened after its operation was freed: the
    // sanitizer must have caught each one, and nothing else.
    expect(bs.staleAccesses).toBe(400);
    expect(bs.uafCaught).toBe(bs.staleAccesses);
    expect(b.staleAccesses).toBe(400);
    expect(b.uafCaught).toBe(0); // sanitizer off
    for (const x of [is, i]) {
      expect(x.staleAccesses).toBe(0);
      expect(x.uafCaught).toBe(0);
      expect(x.meViolations).toBe(0);
      expect(x.hangs).toBe(0);
      expect(x.lockErrors).toBe(0);
      expect(x.leakedBytes).toBe(0);
      expect(x.checkProblems).toEqual([]);
      expect(x.violations).toEqual([]);
      expect(x.wakeP50Us).toBeGreaterThan(0);
    }
    expect(report.inlineClean).toBe(true);
  }, RUN_MS + 30_000);

  it('prints the side-by-side table and the explanation', () => {
    const r = run(['demo', '--ops', '200']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('borrowed + sanitizer');
    expect(r.stdout).toContain('use-after-free caught');
    expect(r.stdout).toContain('What happened');
  }, RUN_MS + 30_000);
});

describe('fencelab stress', () => {
  it('runs clean with inline locks, sanitizer, cancels and callbacks; a seed replays the same choices', () => {
    const args = ['stress', '--ops', '3000', '--exporters', '2', '--importers', '2', '--kill-rate', '0', '--seed', 'replay-me', '--json'];
    const a = run(args);
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.stdout);
    expect(ra.violations).toEqual([]);
    expect(ra.fenceLifecycles).toBe(6000);
    expect(ra.leakedBytes).toBe(0);
    expect(ra.seed).toBe('replay-me');
    expect(ra.cancelled).toBeGreaterThan(0);
    const rb = JSON.parse(run(args).stdout);
    expect(rb.cancelled).toBe(ra.cancelled); // cancel decisions come from the seeded PRNG
  }, 2 * RUN_MS + 30_000);

  it('a run in which no fence completed its lifecycle checked nothing: it says so instead of OK, and exits 1', () => {
    // How short a --duration must be for that depends on how fast the workers start: the verdict is
    // checked on a real run's report with its count set to 0, the exit code on a run too short to do anything.
    const r = run(['stress', '--ops', '10', '--kill-rate', '0', '--seed', 'none', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as StressReport;
    expect(renderStress(report)).toContain('\nOK: every invariant held');
    const text = renderStress({ ...report, fenceLifecycles: 0 });
    expect(text).toContain('NOTHING CHECKED: no fence completed its lifecycle');
    expect(text).not.toContain('OK:');
    const none = run(['stress', '--duration', '0.0001ms', '--kill-rate', '0', '--json']);
    const seen = JSON.parse(none.stdout) as StressReport;
    expect(none.code, none.stderr).toBe(seen.fenceLifecycles === 0 ? 1 : 0);
  }, 2 * RUN_MS + 30_000);

  // --kills fixes the number of kills (the run waits for them): the counts are exact by
  // construction, not by how the scheduler happened to place them within a --duration.
  it('survives importer kills: locks recovered, references dropped, nothing leaked', () => {
    const r = run(['stress', '--duration', '2s', '--kills', '4', '--seed', 'kills', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.kills).toBe(4);
    expect(rep.exporterKills).toBe(0);
    expect(rep.violations).toEqual([]);
    expect(rep.leakedBytes).toBe(0);
    expect(rep.replay).toContain('--kills 4 --kill importers');
  }, RUN_MS + 30_000);

  it('survives exporter kills too, callbacks on: operations end with -ENODEV once, drivers destroyed, nothing leaked', () => {
    // Callbacks on: an exporter killed inside signal() has the rest of its callbacks delivered by
    // its reaper (the signal record), so none is lost and no node leaks. With --kill both the
    // kills alternate, importer first: 5 kills are 3 importers and 2 exporters.
    const r = run(['stress', '--duration', '2s', '--kill', 'both', '--kills', '5', '--callback-rate', '0.5', '--seed', 'exporter-kills', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.kills).toBe(5);
    expect(rep.exporterKills).toBe(2);
    expect(rep.violations).toEqual([]);
    expect(rep.libraryWarnings).toEqual([]); // no reaper released a block it should not have
    expect(rep.leakedBytes).toBe(0);
    expect(rep.fenceLifecycles).toBe(rep.fences);
  }, RUN_MS + 30_000);

  it('a run stopped before its --kills were all done says so: a violation, not a quietly smaller count', () => {
    const clean = {
      config: { kills: 3 }, fences: 5, signaled: 5, doubleSignals: 0, statusMismatches: 0, uafCaught: 0, meViolations: 0, hangs: 0, lockErrors: 0,
      callbacks: { added: 0, ran: 0, removed: 0, late: 0, double: 0 }, leakedBytes: 0, leaks: [], checkProblems: [], workerErrors: [], libraryWarnings: [], kills: 2,
    } as unknown as ScenarioResult;
    expect(violationsOf(clean)).toEqual(['3 kills asked for but 2 done before the run was stopped']);
    expect(violationsOf({ ...clean, kills: 3 })).toEqual([]);
    // A warning of the library (a reaper's release of a block whose ops word is garbage) is one too.
    const stray = 'FenceError: EINVAL: release of a fence whose ops (id 1526652589) are not registered in this thread';
    expect(violationsOf({ ...clean, kills: 3, libraryWarnings: [stray] })).toEqual([`library warning: ${stray}`]);
  });

  it("a run's warnings: the library's (a FenceError, a FENCELAB_ code) are collected, others are not", async () => {
    const w = new LibraryWarnings();
    w.listen();
    try {
      process.emitWarning(Errors.invalid('release of a fence whose ops (id 1526652589) are not registered'));
      warn(Errors.invalid('release of a fence whose ops (id 1526652590) are not registered'), 'FENCELAB_OPS_MISSING');
      warn(new TypeError('a callback threw'), 'FENCELAB_CONTAINER_CALLBACK');
      process.emitWarning('not ours', { code: 'DEP0000' });
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    } finally {
      w.close();
    }
    expect(w.seen).toEqual([
      'FenceError: EINVAL: release of a fence whose ops (id 1526652589) are not registered',
      'FenceError: EINVAL: release of a fence whose ops (id 1526652590) are not registered',
      'TypeError: a callback threw',
    ]);
    // warn() keeps the code (Node drops the options of a warning given as an Error).
    const codes: unknown[] = [];
    const onWarning = (x: Error) => codes.push((x as { code?: unknown }).code);
    process.on('warning', onWarning);
    try {
      warn(Errors.invalid('x'), 'FENCELAB_OPS_MISSING');
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(codes).toEqual(['FENCELAB_OPS_MISSING']);
  });

  it('a kill rate still kills (seeded times; how many depends on the run): clean whatever the count', () => {
    const r = run(['stress', '--duration', '2s', '--kill', 'exporters', '--kill-rate', '3', '--seed', 'rate', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.kills).toBe(rep.exporterKills);
    expect(rep.violations).toEqual([]);
    expect(rep.leakedBytes).toBe(0);
  }, RUN_MS + 30_000);

  it('the hang watch looks only while operations are due: not at the start, not at the shutdown, and a stall the run got over is no failure', () => {
    // With --hang-after 1ms every 20 ms tick without a finished operation is a stall. The
    // workers' start (no operation yet) and shutdown (every operation finished) have none by
    // design: a dump taken there showed the main thread alone and an empty arena, and it was printed
    // as a HANG below "OK". A stall inside the workload (a loaded machine) may still be dumped.
    const dir = mkdtempSync(join(tmpdir(), 'fencelab-hang-'));
    try {
      const dump = join(dir, 'hang.json');
      const r = run(['stress', '--ops', '1500', '--kill-rate', '0', '--hang-after', '1ms', '--hang-dump', dump, '--seed', 'hang-watch']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('OK: every invariant held');
      expect(r.stdout).not.toMatch(/^HANG/m);
      if (existsSync(dump)) {
        const taken = JSON.parse(readFileSync(dump, 'utf8')) as ArenaDump;
        expect(taken.threads.length, taken.reason).toBeGreaterThan(1); // the workers were attached
        expect(r.stdout).toMatch(/^STALL \(the run went on afterwards: not a failure\) \(hang: no progress for \d+ ms\)/m);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, RUN_MS + 30_000);

  it('exits 1 and prints the seed and a replay line when an invariant breaks (borrowed locks)', () => {
    const r = run(['stress', '--ops', '2000', '--exporters', '1', '--importers', '1', '--lock-mode', 'borrowed', '--kill-rate', '0', '--seed', 'broken']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('VIOLATIONS');
    expect(r.stdout).toContain('--seed broken');
  }, RUN_MS + 30_000);

  it('rejects bad options with exit code 2 and a clear message', () => {
    const cases: [string[], RegExp][] = [
      [['stress', '--lock-mode', 'shared'], /unknown lock mode "shared"/],
      [['stress', '--duration', '-5s'], /must not be negative/],
      [['stress', '--lock', 'mcs'], /unknown lock algorithm "mcs"/],
      [['stress', '--exporters', '30', '--importers', '30'], /more workers than the arena allows/],
      [['stress', '--cancel-rate', '2'], /--cancel-rate must be a number in 0..1/],
      [['stress', '--bogus'], /unknown option/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['stress', '--seed', ''], /--seed must be 1-64 characters/],
      [['demo', '--seed', 'two words'], /--seed must be 1-64 characters/],
      [['stress', '--duration', '99999999999999999999s'], /too large \(at most 24h\)/],
      [['stress', '--duration', '0s'], /must be more than 0/],
      [['stress', '--ops', '10', '--duration', '5s'], /--ops and --duration bound the same run/],
      [['stress', '--ops', '10', '--kills', '2'], /--kills spreads its kills over a --duration run/],
      [['stress', '--kills', '2', '--kill-rate', '1'], /--kills and --kill-rate both set/],
      [['stress', '--kills', '-1'], /--kills must be in 0..10000/],
      [['bench', '--suite', 'nope'], /Allowed choices are core, alloc, wake, chain, contention, piscina, all/],
      [['report', '--dir'], /argument missing/],
      [['report', '--bogus'], /unknown option/],
    ];
    for (const [args, message] of cases) {
      const r = run(args, SHORT_MS);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  }, 6 * SHORT_MS);

  it('has --help for every command', () => {
    for (const args of [['--help'], ['demo', '--help'], ['stress', '--help'], ['bench', '--help'], ['report', '--help']]) {
      const r = run(args, SHORT_MS);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: fencelab/);
    }
    const help = run(['stress', '--help']).stdout;
    expect(help).toContain('--kill-rate');
    expect(help).toContain('--kills <n>');
  }, 4 * SHORT_MS);
});
