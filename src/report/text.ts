/**
 * The benchmark results as plain-text tables, for the terminal: what each suite prints when it has
 * measured (bench/util.ts `finishSuite`), from the same results the JSON and the HTML report hold.
 * With a baseline run every row gets two more columns: its headline figure in that run, and the
 * change (see compare.ts).
 */
import {
  allocFigure,
  cellFigure,
  changeOf,
  formatChange,
  formatFigure,
  goalFigure,
  piscinaFigure,
  ratioText,
  rowFigure,
  variantFigure,
  workloadFigure,
  type BaselineFigures,
  type Figure,
} from './compare.js';
import type { AllocResults, AllocRoundsRow, ChainResults, ContentionResults, CoreResults, Goal, LatencyStat, PiscinaResults, Row, Suite, SuiteResults, WakeResults } from './schema.js';

/** Columns aligned on their widest cell; the columns in `left` are left-aligned, the others right-aligned. */
export function textTable(head: string[], rows: string[][], left: number[] = [0]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt)].join('\n');
}

/** The two baseline columns of a row: its figure in the baseline run and the change, or nothing without a baseline. */
function changeCells(f: Figure, baseline: BaselineFigures | undefined): string[] {
  if (baseline === undefined) return [];
  const c = changeOf(f, baseline);
  return c === undefined ? ['–', 'new row'] : [formatFigure(c.before, c.unit), formatChange(c)];
}

const CHANGE_HEAD = ['before', 'change'];

/** A latency figure (ns) in µs with `digits` decimals. */
function micros(ns: number, digits: number): string {
  return (ns / 1000).toFixed(digits);
}

/**
 * The latency columns of a wake or piscina variant: the statistics `stats` of its latency in µs
 * (`digits` decimals), then its p50 and p99 ratios to its baseline variant (empty for the baseline).
 */
function latencyCells(
  v: { latencyNs: LatencyStat; ratioP50?: number; ratioP99?: number },
  stats: (keyof LatencyStat)[],
  digits: number,
): string[] {
  const ratio = (x: number | undefined) => (x === undefined ? '' : `${x.toFixed(2)}×`);
  return [...stats.map((k) => micros(v.latencyNs[k], digits)), ratio(v.ratioP50), ratio(v.ratioP99)];
}

/** Each suite's text renderer. */
const TEXT_RENDERERS: { [S in Suite]: (r: SuiteResults[S], baseline: BaselineFigures | undefined) => string } = {
  core: coreText,
  alloc: allocText,
  chain: chainText,
  wake: wakeText,
  contention: contentionText,
  piscina: piscinaText,
};

/** `suite`'s tables, with a baseline run's figures (from `indexFigures(suiteFigures(…))`) when given. */
export function renderText<S extends Suite>(suite: S, results: SuiteResults[S], baseline?: BaselineFigures): string {
  const render = TEXT_RENDERERS[suite] as ((r: SuiteResults[S], baseline: BaselineFigures | undefined) => string) | undefined;
  if (render) return render(results, baseline);
  throw new Error(`unknown suite ${String(suite)}`);
}

function rowTable(rows: Row[], baseline: BaselineFigures | undefined): string {
  const head = ['task', 'ns/op', 'M ops/s', 'baseline', 'ratio', 'target', 'met', ...(baseline ? CHANGE_HEAD : [])];
  const lines = rows.map((x) => [
    x.name,
    x.nsPerOp.toFixed(1),
    (x.opsPerSec / 1e6).toFixed(2),
    x.baseline ?? '',
    ratioText(x),
    x.target ?? '',
    x.met === undefined ? '' : x.met ? 'met' : 'MISSED',
    ...changeCells(rowFigure(x), baseline),
  ]);
  return textTable(head, lines, [0, 3]);
}

function quickNote(r: { quick?: boolean; load?: number }): string {
  return `${r.load !== undefined ? `; load average ${r.load.toFixed(1)}` : ''}${r.quick ? '; quick run: fewer rounds, noisier' : ''}`;
}

/** A critical-section length as printed: `0`, `100 ns`, `1 µs`, `10 µs`. */
export function formatCs(ns: number): string {
  return ns === 0 ? '0' : ns < 1000 ? `${ns} ns` : `${ns / 1000} µs`;
}

function coreText(r: CoreResults, baseline: BaselineFigures | undefined): string {
  return `fencelab core — single thread (ns per operation; ratio = task / baseline, measured side by side${quickNote(r)})\n${rowTable(r.rows, baseline)}`;
}

function chainText(r: ChainResults, baseline: BaselineFigures | undefined): string {
  return `fence chain (single thread, ${r.chainLength}-link chains; ratio = task / baseline${quickNote(r)})\n${rowTable(r.rows, baseline)}`;
}

export function goalText(goals: Goal[], baseline: BaselineFigures | undefined): string {
  const unit = (g: Goal) => (g.unit === '×' ? '×' : ' µs');
  return `goals\n${textTable(
    ['goal', 'measured', 'target', 'met', ...(baseline ? CHANGE_HEAD : [])],
    goals.map((g) => [g.name, `${g.measured.toFixed(2)}${unit(g)}`, `${g.op} ${g.target}${unit(g)}`, g.met ? 'met' : 'MISSED', ...changeCells(goalFigure(g), baseline)]),
  )}`;
}

function wakeText(r: WakeResults, baseline: BaselineFigures | undefined): string {
  const latency = textTable(
    ['variant', 'p50', 'p90', 'p99', 'mean', 'min', 'p50 ratio', 'p99 ratio', 'off-path', ...(baseline ? CHANGE_HEAD : [])],
    r.variants.map((v) => [
      v.name,
      ...latencyCells(v, ['p50', 'p90', 'p99', 'mean', 'min'], 2),
      String(v.offPath),
      ...changeCells(variantFigure(v), baseline),
    ]),
  );
  const signalers = r.variants.filter((v) => v.signalCostNs !== undefined);
  const cost = textTable(
    ['variant', 'p50', 'p99'],
    signalers.map((v) => [v.name, micros(v.signalCostNs!.p50, 2), micros(v.signalCostNs!.p99, 2)]),
  );
  return [
    `signal → wake latency, µs (${r.rounds} rounds per variant, interleaved; ratio = fence ÷ the raw wait of the same kind; seed ${r.seed}; ${r.cores ?? '?'} cores, Node ${r.node ?? '?'}${quickNote(r)})`,
    latency,
    '',
    'signaler cost (main thread, time inside signal() / store+notify), µs',
    cost,
    '',
    goalText(r.goals, baseline),
  ].join('\n');
}

function contentionText(r: ContentionResults, baseline: BaselineFigures | undefined): string {
  const cellTable = (cells: ContentionResults['results']) =>
    textTable(
      ['lock', 'workers', 'in lock', 'M ops/s', 'vs raw', 'Jain', 'min/max', 'exact', ...(baseline ? CHANGE_HEAD : [])],
      cells.map((c) => [
        c.kind,
        String(c.threads),
        formatCs(c.csNs ?? 0),
        c.mOpsPerSec.toFixed(3),
        c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
        c.jain === undefined ? '—' : c.jain.toFixed(2),
        c.fairness.toFixed(2),
        c.counterOk ? 'yes' : 'NO',
        ...changeCells(cellFigure(c), baseline),
      ]),
    );
  const grid = cellTable(r.results.filter((c) => (c.csNs ?? 0) === 0));
  const sweep = r.results.filter((c) => (c.csNs ?? 0) > 0);
  const parts = [
    `lock contention across workers (${r.ms} ms per cell${r.reps && r.reps > 1 ? `, fastest of ${r.reps}` : ''}; ${r.cores ?? '?'} cores; vs raw = throughput ÷ a bare test-and-set's with the same workers and critical section; Jain = fairness index, 1 = equal shares${quickNote(r)})`,
    grid,
  ];
  if (sweep.length > 0) parts.push('', `the same with busy work inside the lock (${r.nsPerIter?.toFixed(2) ?? '?'} ns per loop iteration, calibrated)`, cellTable(sweep));
  if (r.workload && r.workload.length > 0)
    parts.push(
      '',
      'fence workload: an exporter creates and signals fences, importers add callbacks, read status and put (fences through the pipeline per second)',
      textTable(
        ['locking', 'workers', 'k fences/s', 'vs shared', 'callbacks', 'status reads', ...(baseline ? CHANGE_HEAD : [])],
        r.workload.map((w) => [
          w.variant,
          String(w.threads),
          w.kFencesPerSec.toFixed(1),
          w.ratio === undefined ? '—' : `${w.ratio.toFixed(2)}×`,
          String(w.callbacks),
          String(w.statusReads),
          ...changeCells(workloadFigure(w), baseline),
        ]),
      ),
    );
  if (r.goalRounds && r.goalRounds.length > 0) parts.push('', goalRoundsText(r.goalRounds));
  if (r.goals && r.goals.length > 0) parts.push('', goalText(r.goals, baseline));
  return parts.join('\n');
}

/** The first contention goal's comparison: each lock's median and spread over the interleaved rounds. */
function goalRoundsText(rows: NonNullable<ContentionResults['goalRounds']>): string {
  const pair = (q: [number, number] | undefined, digits: number) => (q === undefined ? '—' : `${q[0].toFixed(digits)}–${q[1].toFixed(digits)}`);
  return [
    `the fence lock against every plain lock, ${rows[0].threads} workers, ${rows[0].rounds} interleaved rounds (medians; IQR = quartiles over the rounds; fence ÷ = the fence's median ÷ the lock's, and the quartiles of the rounds' own ratios)`,
    textTable(
      ['lock', 'M ops/s', 'IQR', 'Jain', 'min/max', 'fence ÷', 'its IQR'],
      rows.map((g) => [
        g.kind,
        g.mOpsPerSec.toFixed(3),
        pair(g.quartiles, 3),
        g.jain.toFixed(2),
        g.fairness.toFixed(2),
        g.fenceRatio === undefined ? '—' : `${g.fenceRatio.toFixed(2)}×`,
        pair(g.fenceRatioQuartiles, 2),
      ]),
    ),
  ].join('\n');
}

function allocText(r: AllocResults, baseline: BaselineFigures | undefined): string {
  const table = textTable(
    ['allocator', 'workers', 'live', 'M pairs/s', 'ns/pair', 'ratio', ...(baseline ? CHANGE_HEAD : [])],
    r.cells.map((c) => [
      c.impl,
      String(c.threads),
      String(c.live),
      c.mOpsPerSec.toFixed(2),
      c.nsPerOp.toFixed(1),
      c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
      ...changeCells(allocFigure(c), baseline),
    ]),
  );
  const parts = [`allocator, one 64-byte block alloc+free at a time (${allocSchedule(r)}; ${r.cores ?? '?'} cores; ns/pair per worker; ratio = ns/pair ÷ @thi.ng/malloc's with the same workers and live blocks${quickNote(r)})`, table];
  if (r.scalingRounds && r.scalingRounds.length > 0)
    parts.push('', `what a second worker adds, ${ALLOC_ROUNDS_CAPTION}`, textTable(ALLOC_ROUNDS_HEAD, r.scalingRounds.map(allocRoundsCells)));
  parts.push('', goalText(r.goals, baseline));
  return parts.join('\n');
}

/** How the alloc suite measured its cells: paired rounds of slices, or (older files) each cell's fastest repetition. */
export function allocSchedule(r: AllocResults): string {
  return r.rounds !== undefined ? `${r.rounds} paired rounds of ${r.ms} ms slices, median per cell` : `${r.ms} ms × ${r.reps ?? 1} per cell, fastest kept`;
}

/** The alloc suite's rounds table (text and report): its caption, head and cells. */
export const ALLOC_ROUNDS_CAPTION =
  "in paired rounds (each round runs every allocator as 1, 2, 2, 1 workers, or 2, 1, 1, 2; a round's scaling = its 2-worker slices' pairs/s ÷ its 1-worker slices'; median and IQR over the rounds; on CPU = median share of its window a worker had a core, the lower worker's with 2; overlap = median overlap of the two workers' windows; per CPU s = the same scaling in pairs per second on a CPU, 1 when a second worker costs the work nothing)";
export const ALLOC_ROUNDS_HEAD = ['allocator', 'live', 'rounds', 'M pairs/s, 1 worker', '2 workers', 'scaling', 'IQR', 'on CPU, 1 worker', '2 workers', 'overlap', 'per CPU s', 'its IQR'];
export function allocRoundsCells(row: AllocRoundsRow): string[] {
  const share = (x: number | undefined) => (x === undefined ? '—' : `${(x * 100).toFixed(0)} %`);
  return [
    row.impl,
    String(row.live),
    String(row.rounds),
    row.mOpsPerSec[0].toFixed(2),
    row.mOpsPerSec[1].toFixed(2),
    `${row.scaling.toFixed(2)}×`,
    `${row.scalingQuartiles[0].toFixed(2)}–${row.scalingQuartiles[1].toFixed(2)}`,
    share(row.onCpu?.[0]),
    share(row.onCpu?.[1]),
    share(row.overlap),
    row.cpuScaling === undefined ? '—' : `${row.cpuScaling.toFixed(2)}×`,
    row.cpuScalingQuartiles === undefined ? '—' : `${row.cpuScalingQuartiles[0].toFixed(2)}–${row.cpuScalingQuartiles[1].toFixed(2)}`,
  ];
}

function piscinaText(r: PiscinaResults, baseline: BaselineFigures | undefined): string {
  const latency = textTable(
    ['schedule', 'variant', 'p50', 'p90', 'p99', 'min', 'p50 ratio', 'p99 ratio', ...(baseline ? CHANGE_HEAD : [])],
    r.variants.map((v) => [v.schedule, v.name, ...latencyCells(v, ['p50', 'p90', 'p99', 'min'], 1), ...changeCells(piscinaFigure(v), baseline)]),
    [0, 1],
  );
  return [
    `fence pool vs piscina pool.run (${r.threads} worker threads; ${r.rounds} interleaved rounds; ${r.cores ?? '?'} cores, Node ${r.node ?? '?'}${quickNote(r)})`,
    `${r.chainLength}-task dependency chain, ns per task`,
    rowTable(r.chain, baseline),
    '',
    `one task at a time, submit → the main thread sees it done, µs (${r.tasks} tasks per variant and schedule; back to back timed after ${r.warmMs ?? 0} ms of the stream and from its first task; ratio = variant ÷ await pool.run of the same schedule; the fence wait spins ${r.spinMicros} µs before it sleeps)`,
    latency,
    '',
    goalText(r.goals, baseline),
    `pull loops started: ${r.counters.kicks}, fence tasks they ran: ${r.counters.ran}`,
  ].join('\n');
}
