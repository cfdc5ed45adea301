#!/usr/bin/env node
/**
 * The `fencelab` command: `demo` (what `npm start` runs), `stress`, `bench`, `report` and `inspect`.
 * Exit codes: 0 clean, 1 a violation (inline demo run, or any stress invariant) or a failed bench
 * suite, 2 bad usage.
 */
import { Command, CommanderError, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { REPORT_FILE, TRACE_SAMPLE_FILE, chartJsPath, writeReport } from '../report/html.js';
import { DEFAULT_SEED, RESULTS_DIR, SUITES, readResults, type BenchResults, type Suite } from '../report/schema.js';
import { SUITE_OPTIONS, readTraceSample, runBench, suiteFile, suiteOptionArgs, traceSamplePath, type BenchOptions } from './bench.js';
import { DEMO_DEFAULTS, renderDemo, runDemo } from './demo.js';
import { baselineOption, dirOption, fileOption, intOption, numberOption, lockKindOption, lockModeOption, parseDuration, rateOption, sanitizeOption, seedOption, suitesOption } from './options.js';
import { announcedProcesses, inspectProcess, readDump, renderInspect } from './inspect.js';
import { createProgress } from './progress.js';
import { CALLBACKS_NOT_ADDED, MAX_STRESS_WORKERS, STRESS_DEFAULTS, STRESS_TRACE_EVENTS, renderStress, runStress, type StressOptions } from './stress.js';
import { outputsRefusal, type PlannedOutput } from './outputs.js';
import { timelinePath, traceLines, writeTraceFiles } from './tracefile.js';
import { MAX_RING_EVENTS } from '../trace/ring.js';
import type { ChromeTrace } from '../trace/chrome.js';
import type { ArenaDump } from '../trace/dump.js';
import { FenceError } from '../errors.js';

const program = new Command();
program
  .name('fencelab')
  .description('Linux DMA fences for Node.js worker threads: the borrowed-lock use-after-free, live, and its fix')
  .version(packageVersion(), '--version', 'print the version of fencelab')
  .addHelpText('after', '\nWith no command, fencelab runs the full demo (4 runs of 4000 operations: about 10 s on 2 cores; what `npm start` does).')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str) });

/** The version in fencelab's package.json (two directories above dist/src/cli, in a clone and in the package). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--force`, on every command that writes files the user names. */
const forceOption = (): Option => new Option('--force', 'overwrite an existing output file even when fencelab did not write it');

/** A trace file and the timeline page written next to it (`--trace`). */
function traceOutputs(file: string | undefined): PlannedOutput[] {
  return file === undefined ? [] : [{ option: '--trace', file }, { option: '--trace (its timeline page)', file: timelinePath(file) }];
}

/** Exits with code 2, before anything runs, when one of `outputs` must not be written (src/cli/outputs.ts). */
function checkOutputs(outputs: PlannedOutput[], force: boolean | undefined): void {
  const why = outputsRefusal(outputs, force === true);
  if (why !== null) program.error(`error: ${why}`, { exitCode: 2, code: 'fencelab.outputExists' });
}

program
  .command('demo', { isDefault: true })
  .description('run the exporter/importer scenario with borrowed and inline locks, with and without the sanitizer, side by side (the default command)')
  .addOption(new Option('--ops <n>', 'operations per run').argParser(intOption('--ops', 100, 10_000_000)).default(DEMO_DEFAULTS.ops))
  .addOption(new Option('--seed <seed>', 'seed of the workload choices').argParser(seedOption).default('fencelab'))
  .option('--json', 'print the report as JSON on stdout', false)
  .addOption(new Option('--trace <file>', 'record the four runs and write a Chrome trace (Perfetto, chrome://tracing) and a timeline page next to it').argParser(fileOption('--trace')))
  .addOption(traceEventsOption('enough for the whole run'))
  .addOption(forceOption())
  .action(async (o: { ops: number; seed: string; json: boolean; trace?: string; traceEvents?: number; force?: boolean }) => {
    checkOutputs(traceOutputs(o.trace), o.force);
    const progress = createProgress('demo', 4 * o.ops, { quiet: o.json });
    const { trace, ...report } = await runDemo({ ...o, trace: o.trace !== undefined }, progress);
    if (o.json) console.log(JSON.stringify(report, null, 2));
    else console.log(renderDemo(report));
    if (trace && o.trace) {
      const page = writeTraceFiles(o.trace, trace, 'fencelab demo — borrowed and inline locks');
      (o.json ? console.error : console.log)(['', ...traceLines(o.trace, page, trace)].join('\n'));
    }
    process.exitCode = report.inlineClean ? 0 : 1;
  });

program
  .command('stress')
  .description('hammer fences across exporter and importer workers, checking every invariant; exits 1 on a violation')
  .addHelpText('after', `\nIn the summary, ${CALLBACKS_NOT_ADDED}`)
  .addOption(new Option('--duration <time>', 'how long to run (e.g. 10s, 2m)').argParser(parseDuration).default(STRESS_DEFAULTS.durationMs, '10s'))
  .addOption(new Option('--ops <n>', 'operations per exporter instead of a duration').argParser(intOption('--ops', 1, 1e9)))
  .addOption(new Option('--exporters <n>', 'exporter workers').argParser(intOption('--exporters', 1, 32)).default(STRESS_DEFAULTS.exporters))
  .addOption(new Option('--importers <n>', 'importer workers').argParser(intOption('--importers', 1, 32)).default(STRESS_DEFAULTS.importers))
  .addOption(new Option('--lock-mode <mode>', 'borrowed or inline fence locks').argParser(lockModeOption).default('inline'))
  .addOption(new Option('--lock <kind>', 'lock algorithm: tas, ttas, ticket, futex').argParser(lockKindOption).default('futex'))
  .addOption(new Option('--sanitizer <on|off>', 'arena sanitizer (counts stale accesses)').argParser(sanitizeOption).default(true, 'on'))
  .addOption(new Option('--cancel-rate <p>', 'probability an operation is cancelled (-ECANCELED)').argParser(rateOption('--cancel-rate')).default(STRESS_DEFAULTS.cancelRate))
  .addOption(new Option('--kill-rate <per-second>', 'workers terminated per second (then replaced)').argParser(numberOption('--kill-rate', 50)).default(STRESS_DEFAULTS.killRate))
  .addOption(new Option('--kills <n>', 'exactly this many kills, evenly spread over a --duration run (which waits for them), instead of --kill-rate; with --kill both they alternate, importer first').argParser(intOption('--kills', 0, 10_000)))
  .addOption(new Option('--kill <who>', 'which workers the kills pick from').choices(['importers', 'exporters', 'both']).default(STRESS_DEFAULTS.kill))
  .addOption(new Option('--callback-rate <p>', 'probability an importer adds a callback').argParser(rateOption('--callback-rate')).default(STRESS_DEFAULTS.callbackRate))
  .addOption(new Option('--jitter <p>', 'relative jitter of work and critical-section times').argParser(rateOption('--jitter')).default(STRESS_DEFAULTS.jitter))
  .addOption(new Option('--work-us <µs>', 'simulated work per operation').argParser(intOption('--work-us', 0, 1_000_000)).default(STRESS_DEFAULTS.workUs))
  .addOption(new Option('--cs-us <µs>', 'time spent inside each critical section').argParser(intOption('--cs-us', 0, 100_000)).default(STRESS_DEFAULTS.csUs))
  .addOption(new Option('--seed <seed>', 'seed of the workload choices (printed; pass it back to replay)').argParser(seedOption))
  .option('--json', 'print the report as JSON on stdout', false)
  .addOption(new Option('--trace <file>', 'record the run and write a Chrome trace (Perfetto, chrome://tracing) and a timeline page next to it').argParser(fileOption('--trace')))
  .addOption(traceEventsOption(`${STRESS_TRACE_EVENTS}; the newest are kept`))
  .addOption(new Option('--hang-after <time>', 'no operation finishing for this long is a hang: the arena is dumped').argParser(parseDuration).default(5000, '5s'))
  .addOption(new Option('--hang-dump <file>', 'where a hang dumps the arena (default fencelab-hang-<seed>.json)').argParser(fileOption('--hang-dump')))
  .addOption(forceOption())
  .action(async (o: Omit<StressOptions, 'trace' | 'hangDump'> & { ops?: number; trace?: string; hangDump?: string; force?: boolean }, command: Command) => {
    if (o.ops !== undefined && command.getOptionValueSource('duration') === 'cli')
      program.error('error: --ops and --duration bound the same run: give one of them', { exitCode: 2, code: 'fencelab.conflictingOptions' });
    if (o.kills !== undefined && o.ops !== undefined)
      program.error('error: --kills spreads its kills over a --duration run: it cannot be used with --ops', { exitCode: 2, code: 'fencelab.conflictingOptions' });
    if (o.kills !== undefined && command.getOptionValueSource('killRate') === 'cli')
      program.error('error: --kills and --kill-rate both set how many workers are killed: give one of them', { exitCode: 2, code: 'fencelab.conflictingOptions' });
    if (o.exporters + o.importers > MAX_STRESS_WORKERS)
      program.error(`error: ${o.exporters} exporters + ${o.importers} importers is more workers than the arena allows (at most ${MAX_STRESS_WORKERS})`, { exitCode: 2, code: 'fencelab.tooManyWorkers' });
    const seed = o.seed ?? randomBytes(4).toString('hex');
    const opts = { ...o, seed, trace: o.trace !== undefined, hangDump: o.hangDump ?? resolve(`fencelab-hang-${seed}.json`) };
    checkOutputs([...traceOutputs(o.trace), { option: o.hangDump === undefined ? 'the hang dump' : '--hang-dump', file: opts.hangDump }], o.force);
    const total = o.ops !== undefined ? o.ops * o.exporters : o.duration;
    const progress = createProgress('stress', total, { quiet: o.json });
    const { trace, ...report } = await runStress(opts, progress);
    if (o.json) console.log(JSON.stringify(report, null, 2));
    else console.log(renderStress(report));
    if (trace && o.trace) {
      const page = writeTraceFiles(o.trace, trace, `fencelab stress — seed ${seed}`);
      (o.json ? console.error : console.log)(['', ...traceLines(o.trace, page, trace)].join('\n'));
    }
    process.exitCode = report.violations.length === 0 && report.fenceLifecycles > 0 ? 0 : 1; // a run that checked nothing fails
  });

program
  .command('inspect')
  .description(
    'print the arena dump (live fences, timelines, held locks, fds, threads and what each waits for) of a running ' +
      '`fencelab stress`, or of a dump file a stress wrote on a hang, with what stands in the way',
  )
  .argument('[file]', 'a dump file (fencelab-hang-<seed>.json)')
  .addOption(new Option('--pid <pid>', 'the running stress to ask (default: the only one running)').argParser(intOption('--pid', 1, 2 ** 31 - 1)))
  .option('--json', 'print the dump as JSON', false)
  .action(async (file: string | undefined, o: { pid?: number; json: boolean }) => {
    if (file !== undefined && file.trim() === '') program.error('error: inspect needs a dump file name, got an empty string', { exitCode: 2, code: 'fencelab.noDump' });
    if (file !== undefined && o.pid !== undefined) program.error('error: give a dump file or --pid, not both', { exitCode: 2, code: 'fencelab.conflictingOptions' });
    let pid = o.pid;
    if (file === undefined && pid === undefined) {
      const running = announcedProcesses();
      if (running.length === 0) program.error('error: no fencelab stress is running (pass a dump file, or --pid)', { exitCode: 2, code: 'fencelab.nothingToInspect' });
      if (running.length > 1) program.error(`error: several fencelab stress runs: ${running.join(', ')} (pick one with --pid)`, { exitCode: 2, code: 'fencelab.whichProcess' });
      pid = running[0];
    }
    let dump: ArenaDump;
    try {
      dump = file !== undefined ? readDump(file) : await inspectProcess(pid!);
    } catch (e) {
      return program.error(`error: ${oneLine(e)}`, { exitCode: 2, code: 'fencelab.noDump' });
    }
    let text: string;
    try {
      text = o.json ? JSON.stringify(dump, null, 2) : renderInspect(dump);
    } catch (e) {
      // A dump that passed the checks but still cannot be rendered is malformed input too, not a crash.
      return program.error(`error: ${file ?? `process ${pid}`}: not a well-formed dump (${oneLine(e)})`, { exitCode: 2, code: 'fencelab.noDump' });
    }
    console.log(text);
  });

/** `--trace-events <n>`: events each thread's trace ring holds. */
function traceEventsOption(defaultText: string): Option {
  return new Option('--trace-events <n>', `events each thread's trace ring holds (default ${defaultText})`).argParser(intOption('--trace-events', 16, MAX_RING_EVENTS));
}

program
  .command('bench')
  .description(
    'run the benchmark suites (ratios against baselines measured in the same run), then write their JSON and an HTML report ' +
      '(by default to bench/results/); exits 1 when a suite failed, after running the others and writing the report',
  )
  .addOption(new Option('--suite <names>', `suites to run, repeatable or comma-separated: ${[...SUITES, 'all'].join(', ')} (default all)`).argParser(suitesOption))
  .option('--quick', 'fewer rounds and shorter times, the same rows (noisier figures)', false)
  .addOption(new Option('--seed <n>', 'seed of the seeded choices (the wake delay schedule)').argParser(intOption('--seed', 0, 2 ** 32 - 1)).default(DEFAULT_SEED, String(DEFAULT_SEED)))
  .addOption(new Option('--json <file>', 'write every suite of the run to this one file (with Node version, CPU, cores, date and seed) instead of bench/results/<suite>.json').argParser(fileOption('--json')))
  .addOption(new Option('--html <file>', `write the report here (default bench/results/${REPORT_FILE}); its traced sample goes next to it, named after it (<name>.trace.json and .trace.html)`).argParser(fileOption('--html')))
  .addOption(new Option('--baseline <file>', 'an earlier --json file: every row shows its change against it, in the tables and the report').argParser(baselineOption))
  .addOption(forceOption())
  .action((o: { suite?: Suite[]; quick: boolean; seed: number; json?: string; html?: string; baseline?: BenchOptions['baseline']; force?: boolean } & Record<string, unknown>) => {
    const sample = o.html === undefined ? undefined : traceSamplePath(o.html);
    checkOutputs([
      ...(o.json === undefined ? [] : [{ option: '--json', file: o.json }]),
      ...(o.html === undefined || sample === undefined ? [] : [
        { option: '--html', file: o.html },
        { option: '--html (its traced sample)', file: sample },
        { option: '--html (its traced sample\'s page)', file: timelinePath(sample) },
      ]),
    ], o.force);
    let suiteOptions: string[];
    try {
      suiteOptions = suiteOptionArgs(givenSuiteOptions(o), o.suite ?? SUITES);
    } catch (e) {
      return program.error(`error: ${oneLine(e)}`, { exitCode: 2, code: 'fencelab.suiteOption' });
    }
    // The suites (and tinybench) ship with the repository, not with the npm package.
    if (!(o.suite ?? SUITES).every((suite) => existsSync(suiteFile(suite))))
      program.error('error: the benchmark suites are not part of the installed package: run them from a clone of the repository (npm run bench)', { exitCode: 2, code: 'fencelab.noBench' });
    if (chartJsPath() === null) program.error(NO_CHART_JS, { exitCode: 2, code: 'fencelab.noChartJs' });
    const outcome = runBench({ suites: o.suite ?? SUITES, quick: o.quick, seed: o.seed, json: o.json, html: o.html, baseline: o.baseline, trace: true, suiteOptions });
    for (const [suite, why] of outcome.failed) console.error(`error: bench suite ${suite} failed (${why})`);
    process.exitCode = outcome.failed.length === 0 ? 0 : 1;
  });

for (const x of SUITE_OPTIONS) {
  const what = Object.entries(x.suites).map(([suite, text]) => `${suite}: ${text}`).join('; ');
  const opt = new Option(x.value ? `${x.name} <n>` : x.name, `suite option, only with suites that take it — ${what}`);
  program.commands.find((c) => c.name() === 'bench')!.addOption(x.value ? opt.argParser(intOption(x.name, 1, 1e9)) : opt);
}

/** The suite options given on the bench command line (name → value), from commander's parsed options. */
function givenSuiteOptions(o: Record<string, unknown>): Map<string, number | true> {
  const given = new Map<string, number | true>();
  for (const x of SUITE_OPTIONS) {
    const value = o[new Option(x.name).attributeName()];
    if (value !== undefined) given.set(x.name, value as number | true);
  }
  return given;
}

program
  .command('report')
  .description('write the HTML report from the benchmark JSON already in the results directory, running nothing')
  .addOption(new Option('--dir <path>', 'results directory (report.html is written there)').argParser(dirOption('--dir')).default(RESULTS_DIR, 'bench/results'))
  .action((o: { dir: string }) => report(o.dir));

const NO_CHART_JS = 'error: the report inlines Chart.js, an optional peer dependency of fencelab that is not installed: npm install chart.js';

/**
 * Writes report.html from the results in `dir` and prints its path and the suites it lacks. A
 * results file that cannot be read is exit code 1, with its name; no results at all, or no Chart.js
 * installed, is exit code 2.
 */
function report(dir: string): void {
  if (chartJsPath() === null) program.error(NO_CHART_JS, { exitCode: 2, code: 'fencelab.noChartJs' });
  let results: BenchResults;
  try {
    results = readResults(dir);
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
    return;
  }
  if (Object.keys(results).length === 0)
    program.error(`error: no benchmark results in ${dir} (run fencelab bench first)`, { exitCode: 2, code: 'fencelab.noResults' });
  // The traced sample of the last bench run, if it is there (a broken one is left out, and said so).
  const sample = join(dir, TRACE_SAMPLE_FILE);
  let trace: { trace: ChromeTrace; file: string } | undefined;
  try {
    if (existsSync(sample)) trace = { trace: readTraceSample(sample), file: TRACE_SAMPLE_FILE };
  } catch (e) {
    console.log(`(no traced sample in the report: ${e instanceof Error ? e.message : String(e)})`);
  }
  console.log(`report: ${writeReport(join(dir, REPORT_FILE), results, { trace })}`);
  const notRun = SUITES.filter((suite) => results[suite] === undefined);
  if (notRun.length > 0) console.log(`not run (no JSON): ${notRun.join(', ')}`);
}

/** Commands by name; anything else in the command's place is refused before commander sees it. */
const COMMANDS = [...program.commands.map((c) => c.name()), 'help'];

try {
  // `demo` is the default command, so commander would read an unknown command as a stray argument
  // of demo ("too many arguments"); name the real mistake instead.
  // `help <command>` of an unknown one: commander prints the whole help as the error.
  const first = process.argv[2];
  const named = first === 'help' ? process.argv[3] : first;
  if (named !== undefined && !named.startsWith('-') && !COMMANDS.includes(named))
    program.error(`error: unknown command '${named}' (commands: ${COMMANDS.join(', ')}; see fencelab --help)`, { exitCode: 2, code: 'fencelab.unknownCommand' });
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // --help and --version end with code 0; every other usage error is exit code 2.
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else if (e instanceof FenceError) {
    // The library refused an input the command passed on (a file's contents, an option): bad input, not a crash.
    console.error(`error: ${oneLine(e)}`);
    process.exitCode = 2;
  } else {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exitCode = 1;
  }
}

/** An error's message on one line (a message with a file's contents in it may span several). */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
}
