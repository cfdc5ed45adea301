/**
 * The exporters × importers scenario shared by the stress and recovery suites: N exporter workers
 * (workers/exporter) each run one driver's K operations and post the exported fences to M importer
 * workers (workers/importer) over MessagePorts; per-fence tallies live in a SharedArrayBuffer.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Arena, Driver, type LockMode } from '../../src/index.js';
import { TestWorker } from './core.js';

/** Tally words per fence: [exporter cb, importer cb, removed, refused, final status, imports]. */
export const STRIDE = 6;
export const T_EXP_CB = 0;
export const T_IMP_CB = 1;
export const T_REMOVED = 2;
export const T_REFUSED = 3;
export const T_STATUS = 4;
export const T_IMPORTS = 5;

export interface Scenario {
  arena: Arena;
  drivers: Driver[];
  exporters: TestWorker[];
  importers: TestWorker[];
  tally: Int32Array;
  total: number;
}

export interface ScenarioOptions {
  n: number;
  m: number;
  k: number;
  seed: string;
  lockMode?: LockMode;
  depth?: number;
  minUs?: number;
  maxUs?: number;
  cancelRate?: number;
  removeRate?: number;
  holdMaxMs?: number;
  exportAs?: 'fd' | 'handle';
  /** Exporter indexes that submit everything and never execute (recovery tests). */
  hang?: number[];
}

/** Spawns everything, wires the ports and starts the exporters. Every worker is watched. */
export async function startScenario(o: ScenarioOptions): Promise<Scenario> {
  const arena = Arena.create({ bytes: 16 << 20, maxThreads: 32 });
  const total = o.n * o.k;
  const tallyBuf = new SharedArrayBuffer(total * STRIDE * 4);
  const tally = new Int32Array(tallyBuf);
  const drivers = Array.from({ length: o.n }, () => Driver.create(arena, { lockMode: o.lockMode ?? 'inline', ringSize: 64 }));
  const importers = Array.from(
    { length: o.m },
    (_, j) =>
      new TestWorker('importer', {
        buffer: arena.buffer,
        seed: `${o.seed}/imp${j}`,
        cancelRate: o.cancelRate ?? 0.3,
        removeRate: o.removeRate ?? 0.2,
        holdMaxMs: o.holdMaxMs ?? 3,
        waitMode: j % 3 === 0 ? 'sync' : j % 3 === 1 ? 'async' : 'mixed',
        tally: tallyBuf,
        stride: STRIDE,
      }),
  );
  const exporters = Array.from(
    { length: o.n },
    (_, e) =>
      new TestWorker('exporter', {
        buffer: arena.buffer,
        driver: drivers[e].handle,
        index: e,
        count: o.k,
        depth: o.depth ?? 6,
        minUs: o.minUs ?? 0,
        maxUs: o.maxUs ?? 300,
        seed: `${o.seed}/exp${e}`,
        export: o.exportAs ?? 'fd',
        tally: tallyBuf,
        stride: STRIDE,
        hang: o.hang?.includes(e) ?? false,
      }),
  );
  for (const w of [...importers, ...exporters]) arena.watch(w.worker);
  await Promise.all([...importers, ...exporters].map((w) => w.next('ready')));
  const toImporter: MessagePort[][] = importers.map(() => []);
  const toExporter: MessagePort[][] = exporters.map(() => []);
  for (let e = 0; e < o.n; e++)
    for (let j = 0; j < o.m; j++) {
      const ch = new MessageChannel();
      toExporter[e].push(ch.port1);
      toImporter[j].push(ch.port2);
    }
  await Promise.all(importers.map((w, j) => {
    w.worker.postMessage({ type: 'ports', ports: toImporter[j] }, toImporter[j]);
    return w.next('listening');
  }));
  exporters.forEach((w, e) => w.worker.postMessage({ type: 'start', ports: toExporter[e] }, toExporter[e]));
  return { arena, drivers, exporters, importers, tally, total };
}

/** Tells every importer how many fences to expect and waits for their 'done'. */
export async function finishImporters(s: Scenario, sent: number[][], timeoutMs = 30_000): Promise<Record<string, number>[]> {
  return Promise.all(
    s.importers.map((w, j) => {
      const expected = sent.reduce((a, per) => a + (per[j] ?? 0), 0);
      w.post({ type: 'finish', expected });
      return w.next('done', timeoutMs).then((m) => m.stats as Record<string, number>);
    }),
  );
}

export async function terminateAll(s: Scenario | undefined): Promise<void> {
  if (!s) return;
  await Promise.all([...s.exporters, ...s.importers].map((w) => w.worker.terminate()));
}
