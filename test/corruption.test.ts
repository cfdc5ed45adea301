/**
 * A corrupted arena gives a reported problem or a typed error, never a hang or an untyped
 * exception. Each seeded trial runs in its own worker (test/fixtures/corrupt-trial.ts) that builds
 * a live arena, writes random bytes over heap ranges or header words, and then signals, puts,
 * waits (with a timeout), checks, describes and detaches; the worker is terminated at a deadline
 * far beyond what the trial needs, so a hang fails the test (naming the call it hung in) instead
 * of hanging CI. CORRUPT_TRIALS changes the number of trials per mode.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { fixture } from './support/core.js';

const TRIALS = Number(process.env.CORRUPT_TRIALS ?? 16);
/** A hang detector, not a timing assertion: a trial takes well under a second even when loaded. */
const DEADLINE_MS = 30_000;

interface Trial {
  outcomes?: [string, string][];
  hungIn?: string;
  crashed?: string;
}

function trial(seed: string, mode: 'heap' | 'header'): Promise<Trial> {
  return new Promise((resolve) => {
    const w = new Worker(fixture('corrupt-trial'), { workerData: { seed, mode } });
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
    w.on('message', (m: { type: string; name?: string; outcomes?: [string, string][] }) => {
      if (m.type === 'step') step = m.name!;
      else if (m.type === 'done') finish({ outcomes: m.outcomes });
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
        const seed = `corrupt-${mode}-${i}`;
        const t = await trial(seed, mode);
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
});
