/**
 * One section of the benchmark report per suite (html.ts): its tables and charts, against the
 * baseline run when there is one.
 */
import { allocFigure, cellFigure, goalFigure, piscinaFigure, rowFigure, variantFigure, workloadFigure } from './compare.js';
import { ALLOC_ROUNDS_CAPTION, ALLOC_ROUNDS_HEAD, allocRoundsCells, allocSchedule, formatCs } from './text.js';
import { type AllocCell, type AllocResults, type ChainResults, type ContentionCell, type ContentionResults, type CoreResults, type FenceWorkloadRow, type PiscinaResults, type WakeResults } from './schema.js';
import { SERIES, BASELINE_SERIES, LINE_CHART_PX, Config, Charts, Section, Baseline, changeFor, changeLine, barDatasets, lineDatasets, lineChart, COMMON_OPTIONS, barChart, barLegend, barsHeight, axisFloor, chartBlock, section, changeHead, changeCells, rowTable, goalTable, htmlTable, outcomes, rowsByFigure, lines, nullable, significant, escapeHtml } from './blocks.js';

export function coreSection(r: CoreResults, base: Baseline<'core'> | undefined): Section {
  const ratioRows = r.rows.filter((x) => x.ratio !== undefined);
  const rateRows = r.rows.filter((x) => x.targetMinOpsPerSec !== undefined);
  const baseRow = rowsByFigure(base?.results?.rows);
  const ratios = barChart(
    ratioRows.map((x) => ({
      label: [x.name, `÷ ${x.baseline}`, ...changeLine(rowFigure(x), base)],
      value: x.ratio!,
      before: base ? (baseRow.get(rowFigure(x).key)?.ratio ?? null) : undefined,
      target: x.targetMaxRatio,
      met: x.met,
    })),
    'ratio (×), lower is faster',
    'linear',
  );
  const charts: Charts = [['chart-core-ratios', ratios]];
  const labelLines = base ? 3 : 2;
  const parts = [chartBlock('chart-core-ratios', barsHeight(ratioRows.length, base ? 2 : 1, labelLines), `Each task as a ratio to its baseline. ${barLegend(base)}`)];
  if (rateRows.length > 0) {
    const rates = barChart(
      rateRows.map((x) => ({
        label: lines(x.name, changeLine(rowFigure(x), base)),
        value: x.opsPerSec / 1e6,
        before: base ? nullable(baseRow.get(rowFigure(x).key)?.opsPerSec, (v) => v / 1e6) : undefined,
        target: x.targetMinOpsPerSec! / 1e6,
        met: x.met,
      })),
      'M operations/s, higher is better',
      'linear',
    );
    charts.push(['chart-core-rates', rates]);
    parts.push(chartBlock('chart-core-rates', barsHeight(rateRows.length, base ? 2 : 1, labelLines - 1), `Throughput against its target. ${barLegend(base)}`));
  }
  return { html: section('core', r, '', [...parts, rowTable(r.rows, base)]), charts, met: outcomes(r.rows), changes: base ? r.rows.map((x) => changeFor(rowFigure(x), base)) : [] };
}

export function chainSection(r: ChainResults, base: Baseline<'chain'> | undefined): Section {
  const baseline = r.rows.find((x) => x.baseline)?.baseline;
  const baseRow = rowsByFigure(base?.results?.rows);
  const chart = barChart(
    r.rows.map((x) => ({
      label: lines(x.name, changeLine(rowFigure(x), base)),
      value: x.nsPerOp,
      before: base ? (baseRow.get(rowFigure(x).key)?.nsPerOp ?? null) : undefined,
      met: x.met,
    })),
    'ns per operation (log scale)',
    'logarithmic',
  );
  const caption = `Costs per link appended, walked, collected or re-armed, next to whole calls; ratios to ${baseline ?? 'the baseline'} in the table${base ? ' (the change is of that ratio)' : ''}. ${barLegend(base)}`;
  return {
    html: section('chain', r, `${r.chainLength} links`, [chartBlock('chart-chain', barsHeight(r.rows.length, base ? 2 : 1, base ? 2 : 1), caption), rowTable(r.rows, base)]),
    charts: [['chart-chain', chart]],
    met: outcomes(r.rows),
    changes: base ? r.rows.map((x) => changeFor(rowFigure(x), base)) : [],
  };
}

/** Horizontal bars of latencies on a log axis (its floor below the smallest of `p50s`), one row per label. */
function latencyBars(labels: Config['data']['labels'], datasets: Config['data']['datasets'], p50s: number[], title: string): Config {
  return {
    type: 'bar',
    data: { labels, datasets },
    options: {
      ...COMMON_OPTIONS,
      indexAxis: 'y',
      scales: {
        x: { type: 'logarithmic', ...axisFloor('logarithmic', p50s), title: { display: true, text: title } },
        y: { ticks: { autoSkip: false } },
      },
    },
  };
}

export function wakeSection(r: WakeResults, base: Baseline<'wake'> | undefined): Section {
  const us = (ns: number) => ns / 1000;
  const percentiles = ['p50', 'p90', 'p99'] as const;
  const before = new Map((base?.results?.variants ?? []).map((v) => [v.name, v] as const));
  const datasets = barDatasets(
    percentiles,
    (p) => r.variants.map((v) => us(v.latencyNs[p])),
    base && ((p) => r.variants.map((v) => nullable(before.get(v.name)?.latencyNs[p], us))),
  );
  const chart = latencyBars(
    r.variants.map((v) => lines(v.name, changeLine(variantFigure(v), base))),
    datasets,
    r.variants.map((v) => us(v.latencyNs.p50)),
    'µs from signal() to the waiter running (log scale)',
  );
  const ratio = (x: number | undefined) => (x === undefined ? '' : `${x.toFixed(2)}×`);
  const table = htmlTable(
    ['variant', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'min µs', 'max µs', 'p50 ratio', 'p99 ratio', 'off-path rounds', ...changeHead(base)],
    r.variants.map((v) => [
      v.name,
      ...[v.latencyNs.p50, v.latencyNs.p90, v.latencyNs.p99, v.latencyNs.mean, v.latencyNs.min, v.latencyNs.max].map((ns) => us(ns).toFixed(2)),
      ratio(v.ratioP50),
      ratio(v.ratioP99),
      String(v.offPath),
      ...changeCells(variantFigure(v), base),
    ]),
  );
  const details = `${r.rounds} rounds per variant, interleaved; seed ${r.seed}`;
  const caption = `Fence waits next to the raw Atomics waits and postMessage they are measured against (ratios: fence ÷ the raw wait of the same kind).${base ? ' Light bars: the baseline run.' : ''}`;
  return {
    html: section('wake', r, details, [
      chartBlock('chart-wake', barsHeight(r.variants.length, percentiles.length * (base ? 2 : 1), base ? 2 : 1), caption),
      table,
      goalTable(r.goals, base),
    ]),
    charts: [['chart-wake', chart]],
    met: r.goals.map((g) => g.met),
    changes: base ? [...r.variants.map((v) => changeFor(variantFigure(v), base)), ...r.goals.map((g) => changeFor(goalFigure(g), base))] : [],
  };
}

export function contentionSection(r: ContentionResults, base: Baseline<'contention'> | undefined): Section {
  const cs = (c: ContentionCell) => c.csNs ?? 0;
  const grid = r.results.filter((c) => cs(c) === 0);
  const threads = [...new Set(grid.map((c) => c.threads))].sort((a, b) => a - b);
  const kinds = [...new Set(r.results.map((c) => c.kind))];
  const find = (cells: ContentionCell[] | undefined, kind: string, t: number, ns = 0) => cells?.find((c) => c.kind === kind && c.threads === t && cs(c) === ns);
  const baseCells = base?.results?.results;
  const charts: Charts = [];
  const parts: string[] = [];

  // Throughput and fairness against the worker count, one line per lock.
  const perKind = (value: (c: ContentionCell) => number | undefined) =>
    lineDatasets(
      kinds,
      (k) => threads.map((t) => nullable(find(r.results, k, t), (c) => value(c) ?? NaN)),
      base ? (k) => threads.map((t) => nullable(find(baseCells, k, t), (c) => value(c) ?? NaN)) : undefined,
    );
  charts.push(['chart-contention', lineChart(threads.map(String), perKind((c) => c.mOpsPerSec), 'workers', 'M lock acquisitions/s (all workers)')]);
  parts.push(
    chartBlock(
      'chart-contention',
      LINE_CHART_PX + (base ? 30 : 0),
      `Throughput of each lock as workers are added (${r.cores ?? '?'} cores: beyond that, workers take turns on them); vs raw in the table = its throughput ÷ a bare test-and-set's with the same workers.${base ? ' Dashed lines: the baseline run.' : ''}`,
    ),
  );
  if (grid.some((c) => c.jain !== undefined)) {
    charts.push(['chart-contention-fairness', lineChart(threads.map(String), perKind((c) => c.jain), 'workers', "Jain's fairness index (1 = equal shares)", { min: 0, max: 1 })]);
    parts.push(
      chartBlock(
        'chart-contention-fairness',
        LINE_CHART_PX + (base ? 30 : 0),
        `How evenly the workers shared the lock: Jain's index of their acquisitions, (Σx)² ÷ (n·Σx²) — 1 when all took the same number, 1/n when one took them all.${base ? ' Dashed lines: the baseline run.' : ''}`,
      ),
    );
  }

  // The grid's table here, the sweep's after its charts.
  parts.push(contentionTable(grid, base));
  // Throughput against the critical section's length, one chart per worker count of the sweep.
  const lengths = [...new Set(r.results.map(cs))].sort((a, b) => a - b);
  const sweepThreads = [...new Set(r.results.filter((c) => cs(c) > 0).map((c) => c.threads))].sort((a, b) => a - b);
  for (const t of sweepThreads) {
    const id = `chart-contention-sweep-${t}`;
    const datasets = lineDatasets(
      kinds,
      (k) => lengths.map((ns) => nullable(find(r.results, k, t, ns), (c) => c.mOpsPerSec)),
      base ? (k) => lengths.map((ns) => nullable(find(baseCells, k, t, ns), (c) => c.mOpsPerSec)) : undefined,
    );
    charts.push([id, lineChart(lengths.map(formatCs), datasets, 'busy work inside the lock', `M acquisitions/s, ${t} workers (log scale)`, undefined, 'logarithmic')]);
    parts.push(
      chartBlock(
        id,
        LINE_CHART_PX + (base ? 30 : 0),
        `${t} workers holding the lock for about 0, 100 ns, 1 µs and 10 µs of busy work each time (${r.nsPerIter ? `${r.nsPerIter.toFixed(2)} ns per loop iteration, calibrated` : 'a calibrated loop'}). The longer the section, the more a lock that sleeps instead of spinning saves the core for the holder.${base ? ' Dashed lines: the baseline run.' : ''}`,
      ),
    );
  }

  const sweep = r.results.filter((c) => cs(c) > 0);
  if (sweep.length > 0) parts.push(contentionTable(sweep, base));

  const workload = r.workload ?? [];
  if (workload.length > 0) {
    const w = workloadBlock(workload, base);
    charts.push(w.chart);
    parts.push(...w.html);
  }
  const goals = r.goals ?? [];
  parts.push(goalTable(goals, base));
  return {
    html: section('contention', r, `${r.ms} ms per cell`, parts),
    charts,
    met: goals.map((g) => g.met),
    changes: base
      ? [...r.results.map((c) => changeFor(cellFigure(c), base)), ...workload.map((w) => changeFor(workloadFigure(w), base)), ...goals.map((g) => changeFor(goalFigure(g), base))]
      : [],
  };
}

/** The table of contention cells: per lock and worker count, throughput, ratio to raw, fairness, the counter's check. */
function contentionTable(cells: ContentionCell[], base: Baseline<'contention'> | undefined): string {
  return htmlTable(
    ['lock', 'workers', 'in lock', 'M ops/s', 'vs raw', 'Jain', 'min/max', 'exact', ...changeHead(base)],
    cells.map((c) => [
      c.kind,
      String(c.threads),
      formatCs(c.csNs ?? 0),
      significant(c.mOpsPerSec),
      c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
      c.jain === undefined ? '—' : c.jain.toFixed(2),
      c.fairness.toFixed(2),
      c.counterOk ? 'yes' : { text: 'NO', cls: 'missed' },
      ...changeCells(cellFigure(c), base),
    ]),
  );
}

/** The fence workload's chart and table (see bench/contention.bench.ts): fences/s per locking variant and worker count. */
function workloadBlock(workload: FenceWorkloadRow[], base: Baseline<'contention'> | undefined): { chart: [string, Config]; html: string[] } {
  const wThreads = [...new Set(workload.map((w) => w.threads))].sort((a, b) => a - b);
  const variants = [...new Set(workload.map((w) => w.variant))];
  const at = (rows: FenceWorkloadRow[] | undefined, v: string, t: number) => rows?.find((w) => w.variant === v && w.threads === t);
  const datasets = barDatasets(
    variants,
    (v) => wThreads.map((t) => nullable(at(workload, v, t), (w) => w.kFencesPerSec)),
    base && ((v) => wThreads.map((t) => nullable(at(base.results?.workload, v, t), (w) => w.kFencesPerSec))),
  );
  const chart: [string, Config] = [
    'chart-contention-workload',
    {
      type: 'bar',
      data: { labels: wThreads.map((t) => `${t} workers (1 exporter, ${t - 1} importer${t === 2 ? '' : 's'})`), datasets },
      options: { ...COMMON_OPTIONS, scales: { y: { beginAtZero: true, title: { display: true, text: 'thousand fences/s through the pipeline' } } } },
    },
  ];
  const html = [
    chartBlock(
      'chart-contention-workload',
      LINE_CHART_PX,
      `The fence workload: an exporter creates fences, takes a reference per importer and signals each a few fences later; every importer takes every fence, adds a callback, reads its status and puts it, and runs the callbacks the signals queue to it. Every fence borrowing one timeline lock puts all of that on one lock word; inline locks spread it over the fences.${base ? ' Light bars: the baseline run.' : ''}`,
    ),
    htmlTable(
      ['locking', 'workers', 'k fences/s', 'vs shared lock', 'callbacks', 'status reads', ...changeHead(base)],
      workload.map((w) => [
        w.variant,
        String(w.threads),
        significant(w.kFencesPerSec),
        w.ratio === undefined ? '—' : `${w.ratio.toFixed(2)}×`,
        String(w.callbacks),
        String(w.statusReads),
        ...changeCells(workloadFigure(w), base),
      ]),
      [0],
    ),
  ];
  return { chart, html };
}

export function allocSection(r: AllocResults, base: Baseline<'alloc'> | undefined): Section {
  const groups = [...new Set(r.cells.map((c) => `${c.threads}|${c.live}`))];
  const impls = [...new Set(r.cells.map((c) => c.impl))];
  const at = (cells: AllocCell[] | undefined, impl: string, group: string) => cells?.find((c) => `${c.threads}|${c.live}` === group && c.impl === impl);
  const label = (group: string) => {
    const [t, live] = group.split('|').map(Number);
    return `${t} worker${t === 1 ? '' : 's'}, ${live === 0 ? 'empty heap' : `${live.toLocaleString('en-US')} live blocks each`}`;
  };
  const datasets = barDatasets(
    impls,
    (impl) => groups.map((g) => nullable(at(r.cells, impl, g), (c) => c.mOpsPerSec)),
    base && ((impl) => groups.map((g) => nullable(at(base.results?.cells, impl, g), (c) => c.mOpsPerSec))),
  );
  const chart: Config = {
    type: 'bar',
    data: { labels: groups.map(label), datasets },
    options: { ...COMMON_OPTIONS, scales: { y: { beginAtZero: true, title: { display: true, text: 'M alloc+free pairs/s (all workers)' } } } },
  };
  const table = htmlTable(
    ['allocator', 'workers', 'live', 'M pairs/s', 'ns/pair', 'ratio', ...changeHead(base)],
    r.cells.map((c) => [
      c.impl,
      String(c.threads),
      String(c.live),
      significant(c.mOpsPerSec),
      c.nsPerOp.toFixed(1),
      c.ratio === undefined ? '—' : `${c.ratio.toFixed(2)}×`,
      ...changeCells(allocFigure(c), base),
    ]),
  );
  const caption = `Each worker allocates and frees one 64-byte block at a time. @thi.ng/malloc is single-threaded, so each worker has a pool of its own (nothing shared); the global-lock free list takes one lock on every call; the arena's allocator works in per-thread caches. ns/pair is per worker; ratio = that ÷ @thi.ng/malloc's with the same workers and live blocks (lower is faster). ${
    r.rounds !== undefined ? `Each cell: the median of its slices over ${r.rounds} paired rounds.` : `Fastest of ${r.reps ?? 1} repetition${r.reps === 1 ? '' : 's'} per cell.`
  }${base ? ' Light bars: the baseline run.' : ''}`;
  const rounds =
    r.scalingRounds && r.scalingRounds.length > 0
      ? [`<p>What a second worker adds, ${escapeHtml(ALLOC_ROUNDS_CAPTION)}</p>`, htmlTable(ALLOC_ROUNDS_HEAD, r.scalingRounds.map(allocRoundsCells), [0])]
      : [];
  return {
    html: section('alloc', r, allocSchedule(r), [chartBlock('chart-alloc', LINE_CHART_PX, caption), table, ...rounds, goalTable(r.goals, base)]),
    charts: [['chart-alloc', chart]],
    met: r.goals.map((g) => g.met),
    changes: base ? [...r.cells.map((c) => changeFor(allocFigure(c), base)), ...r.goals.map((g) => changeFor(goalFigure(g), base))] : [],
  };
}


export function piscinaSection(r: PiscinaResults, base: Baseline<'piscina'> | undefined): Section {
  const us = (ns: number) => ns / 1000;
  const percentiles = ['p50', 'p99'] as const;
  const key = (v: { schedule: string; name: string }) => `${v.schedule}: ${v.name}`;
  const before = new Map((base?.results?.variants ?? []).map((v) => [key(v), v] as const));
  const datasets: Config['data']['datasets'] = [];
  percentiles.forEach((p, i) => {
    datasets.push({ type: 'bar', label: p, data: r.variants.map((v) => us(v.latencyNs[p])), backgroundColor: SERIES[i] });
    const was = r.variants.map((v) => nullable(before.get(key(v))?.latencyNs[p], us));
    if (base && was.some((x) => x !== null)) datasets.push({ type: 'bar', label: `${p}, baseline run`, data: was, backgroundColor: BASELINE_SERIES[i] });
  });
  const withBefore = datasets.length > percentiles.length;
  const latency = latencyBars(
    r.variants.map((v) => lines(key(v), changeLine(piscinaFigure(v), base))),
    datasets,
    r.variants.map((v) => us(v.latencyNs.p50)),
    'µs from submitting a task to the main thread seeing it done (log scale)',
  );
  const baseRow = rowsByFigure(base?.results?.chain);
  const chain = barChart(
    r.chain.map((x) => ({
      label: lines(x.name, changeLine(rowFigure(x), base)),
      value: us(x.nsPerOp),
      before: base ? nullable(baseRow.get(rowFigure(x).key)?.nsPerOp, us) : undefined,
      met: x.met,
    })),
    'µs per task of the chain (wall time ÷ tasks), lower is faster',
    'linear',
  );
  const ratio = (x: number | undefined) => (x === undefined ? '' : `${x.toFixed(2)}×`);
  const table = htmlTable(
    ['variant', 'schedule', 'p50 µs', 'p90 µs', 'p99 µs', 'min µs', 'max µs', 'p50 ratio', 'p99 ratio', ...changeHead(base)],
    r.variants.map((v) => [
      v.name,
      v.schedule,
      ...[v.latencyNs.p50, v.latencyNs.p90, v.latencyNs.p99, v.latencyNs.min, v.latencyNs.max].map((ns) => us(ns).toFixed(1)),
      ratio(v.ratioP50),
      ratio(v.ratioP99),
      ...changeCells(piscinaFigure(v), base),
    ]),
  );
  const chainCaption = `A ${r.chainLength}-task dependency chain on one pool of ${r.threads} threads: every task submitted at once with its predecessor's out-fence as dependency (the scheduler starts each in the worker that signaled the one before), against the main thread awaiting each pool.run and submitting the next. ${barLegend(base)}`;
  const latencyCaption = `One task at a time, ${r.tasks} per variant and schedule: back to back (a pull loop still lingers on the queue), timed once the stream has run ${r.warmMs ?? 0} ms and from its first task after the pool idled, and after ${r.gapUs} µs idle (the pull loops asleep on the queue: a submission wakes one through shared memory, and the worker's core may have idled). The fence's wait() spins ${r.spinMicros} µs before it sleeps; ratios: variant ÷ await pool.run of the same schedule (lower is faster).${withBefore ? ' Light bars: the baseline run.' : ''}`;
  return {
    html: section('piscina', r, `${r.rounds} interleaved rounds`, [
      chartBlock('chart-piscina-chain', barsHeight(r.chain.length, base ? 2 : 1, base ? 2 : 1), chainCaption),
      rowTable(r.chain, base),
      chartBlock('chart-piscina-latency', barsHeight(r.variants.length, percentiles.length * (withBefore ? 2 : 1), base ? 2 : 1), latencyCaption),
      table,
      goalTable(r.goals, base),
    ]),
    charts: [
      ['chart-piscina-chain', chain],
      ['chart-piscina-latency', latency],
    ],
    met: r.goals.map((g) => g.met),
    changes: base
      ? [...r.chain.map((x) => changeFor(rowFigure(x), base)), ...r.variants.map((v) => changeFor(piscinaFigure(v), base)), ...r.goals.map((g) => changeFor(goalFigure(g), base))]
      : [],
  };
}
