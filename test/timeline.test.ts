/**
 * The offline timeline view of a trace: a self-contained page (or a section of the bench report)
 * that carries the trace as inert JSON and draws it with its own script — nothing in the trace can
 * break out of it. (Drawn in headless Chromium by hand; see docs/architecture.md, observability.)
 */
import { describe, expect, it } from 'vitest';
import { Arena, renderTimelinePage, renderTimelineSection, type ChromeTrace } from '../src/index.js';
import { renderReport } from '../src/report/html.js';
import * as L from '../src/trace/layout.js';
import { traceEvent } from '../src/trace/ring.js';
import { HOSTILE, SAMPLE } from './support/bench-samples.js';

function sampleTrace(): ChromeTrace {
  const arena = Arena.create({ bytes: 1 << 20 });
  arena.trace.start();
  arena.trace.nameThread(HOSTILE);
  traceEvent(arena, L.EV_LOCK_CONTENDED, 10, 1, 0, 0, 0);
  traceEvent(arena, L.EV_LOCK_ACQUIRED, 10, 1, 0, 0, 0);
  traceEvent(arena, L.EV_LOCK_RELEASED, 10, 0, 0, 0, 0);
  const trace = arena.trace.export();
  trace.otherData.note = '</script><script>alert(1)</script>';
  return trace;
}

/** The JSON the page carries, read back the way its script reads it. */
function embedded(html: string): ChromeTrace {
  const m = /<script type="application\/json">([\s\S]*?)<\/script>/.exec(html);
  expect(m, 'the trace as a JSON script element').not.toBeNull();
  return JSON.parse(m![1]) as ChromeTrace;
}

describe('timeline view', () => {
  it('is one page that carries the trace inertly and says how to open the file in Perfetto', () => {
    const trace = sampleTrace();
    const html = renderTimelinePage(trace, { title: 'run <1>', traceFile: 'out.json' });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<title>run &lt;1&gt;</title>');
    expect(html).toContain('<code>out.json</code>');
    expect(html).toContain('https://ui.perfetto.dev');
    // Nothing in the trace closes its script element or adds markup.
    expect(html.match(/<\/script>/g)!.length).toBe(2);
    expect(html).not.toContain(HOSTILE);
    expect(embedded(html)).toEqual(JSON.parse(JSON.stringify(trace)));
    // No network: no src or href to load besides the Perfetto link.
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/<link /);
    const tracks = trace.traceEvents.filter((e) => e.name === 'thread_name').length;
    expect(html).toContain(`${tracks} tracks`);
  });

  it('refuses a section id that is not a plain identifier', () => {
    expect(() => renderTimelineSection(sampleTrace(), { id: 'x"><script>' })).toThrow(/EINVAL: renderTimelineSection: id must be a plain identifier/);
  });

  it('goes into the bench report when a traced sample is given, and only then', () => {
    const trace = sampleTrace();
    const withTrace = renderReport(SAMPLE, { trace: { trace, file: 'trace.json' } });
    expect(withTrace).toContain('id="fencelab-trace-sample"');
    expect(withTrace).toContain('<code>trace.json</code>');
    expect(embedded(withTrace.slice(withTrace.indexOf('id="fencelab-trace-sample"')))).toEqual(JSON.parse(JSON.stringify(trace)));
    expect(renderReport(SAMPLE)).not.toContain('fencelab-trace-sample');
  });
});
