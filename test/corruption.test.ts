/**
 * A corrupted arena gives a reported problem or a typed error, never a hang or an untyped
 * exception. Each seeded trial runs in its own worker (test/fixtures/corrupt-trial.ts) that builds
 * a live arena, writes random bytes over heap ranges or header words, and then signals, puts,
 * waits (with a timeout), checks, describes and detaches; the worker is terminated at a deadline
 * far beyond what the trial needs, so a hang fails the test (naming the call it hung in) instead
 * of hanging CI. CORRUPT_TRIALS changes the number of trials per mode, CORRUPT_SEED the seeds'
 * prefix (a long run with another prefix explores other corruptions).
 *
 * Targeted trials (test/fixtures/corrupt-word.ts) overwrite one chosen word each — a free-list
 * link, a ring position, a ledger count, a robust-list entry, an fd entry's fence word, a
 * callback or timeline link, an array's child count, a chain link's predecessor — and must get an
 * ENOTRECOVERABLE or a problem reported by arena.check(), in bounded time.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { fixture } from './support/core.js';

const TRIALS = Number(process.env.CORRUPT_TRIALS ?? 12);
const SEED = process.env.CORRUPT_SEED ?? 'corrupt';
/** A hang detector, not a timing assertion: a trial takes well under a second even when loaded. */
const DEADLINE_MS = 30_000;

interface Trial {
  outcomes?: [string, string][];
  problems?: string[];
  hungIn?: string;
  crashed?: string;
}

/** Runs fixture `name` with `data` in a worker until it is done, hangs past DEADLINE_MS, or crashes. */
function trial(name: string, data: object): Promise<Trial> {
  return new Promise((resolve) => {
    const w = new Worker(fixture(name), { workerData: data });
    let step = '(start)';
    let settled = false;
    const finish = (t: Trial) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void w.terminate();
      resolve(t);
    };
    const timer = setTimeout(() => finish({ hungIn: step }), DEADLINE_MS);
    w.on('message', (m: { type: string; name?: string; outcomes?: [string, string][]; problems?: string[] }) => {
      if (m.type === 'step') step = m.name!;
      else if (m.type === 'done') finish({ outcomes: m.outcomes, problems: m.problems });
    });
    w.on('error', (e) => finish({ crashed: `${step}: ${e.name}: ${e.message}` }));
    w.on('exit', (code) => finish({ crashed: `${step}: exited with ${code} before it was done` }));
  });
}

describe('corrupted arena', () => {
  for (const mode of ['heap', 'header'] as const) {
    it(`${TRIALS} seeded trials with random bytes over ${mode === 'heap' ? 'heap ranges' : 'header words'}: every call returns or throws a FenceError`, async () => {
      const byOutcome: Record<string, number> = {};
      const bad: string[] = [];
      for (let i = 0; i < TRIALS; i++) {
        const seed = `${SEED}-${mode}-${i}`;
        const t = await trial('corrupt-trial', { seed, mode });
        if (t.hungIn) bad.push(`${seed}: hung in ${t.hungIn}`);
        if (t.crashed) bad.push(`${seed}: ${t.crashed}`);
        for (const [name, out] of t.outcomes ?? []) {
          byOutcome[out.startsWith('untyped') ? 'untyped' : out] = (byOutcome[out.startsWith('untyped') ? 'untyped' : out] ?? 0) + 1;
          if (out.startsWith('untyped')) bad.push(`${seed}: ${name} threw ${out}`);
        }
      }
      console.log(`corruption (${mode}): ${TRIALS} trials, outcomes ${JSON.stringify(byOutcome)}`);
      expect(bad).toEqual([]);
    });
  }

  const TARGETS = [
    'free-list link', 'driver ring position', 'ledger count', 'robust-list entry',
    'fd entry fence word', 'callback link', 'timeline point link', 'array child count', 'chain predecessor',
  ];
  it.each(TARGETS)('one corrupted %s: ENOTRECOVERABLE or a reported problem, no hang, no untyped error', async (target) => {
    const t = await trial('corrupt-word', { target });
    expect(t.hungIn, `hung in ${t.hungIn}`).toBeUndefined();
    expect(t.crashed).toBeUndefined();
    const outcomes = t.outcomes!;
    expect(outcomes.filter(([, out]) => out.startsWith('untyped'))).toEqual([]);
    // The corruption is found: a call refuses it or the check names it.
    expect(outcomes.some(([, out]) => out === 'ENOTRECOVERABLE' || out === 'reported'), JSON.stringify(outcomes)).toBe(true);
    if (outcomes.some(([, out]) => out === 'reported')) expect(t.problems!.length).toBeGreaterThan(0);
  });
});
