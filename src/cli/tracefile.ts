/**
 * What `--trace FILE` writes: the Chrome trace-event file (Perfetto and chrome://tracing open it)
 * and, next to it, a self-contained timeline page of the same trace (`FILE` with `.html` instead of
 * `.json`) for a look without any tool.
 */
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ChromeTrace } from '../trace/chrome.js';
import { renderTimelinePage } from '../trace/viewer.js';

/** The timeline page's path for trace file `file`. */
export function timelinePath(file: string): string {
  return /\.json$/i.test(file) ? file.replace(/\.json$/i, '.html') : `${file}.html`;
}

/** Writes `trace` to `file` and its timeline page next to it; returns the page's path. */
export function writeTraceFiles(file: string, trace: ChromeTrace, title: string): string {
  writeFileSync(file, JSON.stringify(trace));
  const page = timelinePath(file);
  writeFileSync(page, renderTimelinePage(trace, { title, traceFile: basename(file) }));
  return page;
}

/** The lines a command prints after writing a trace. */
export function traceLines(file: string, page: string, trace: ChromeTrace): string[] {
  const lost = Number(trace.otherData.eventsLost ?? 0);
  return [
    `trace: ${file} (open it in https://ui.perfetto.dev or chrome://tracing)`,
    `timeline: ${page} (opens in any browser, offline)`,
    ...(lost > 0 ? [`note: ${lost} events were overwritten in full rings; the oldest part of the run is missing`] : []),
  ];
}
