/**
 * Typed-input fuzz: ≥ 100,000 seeded calls over the public API in batches (see test/support/fuzz.ts).
 * Only FenceErrors with a code are ever thrown, every batch ends with a clean arena and 0 leaked
 * bytes, every callback runs exactly once. A failing batch prints its replay line.
 * FUZZ_SEED=<seed> replays one batch; FUZZ_BATCHES / FUZZ_CALLS change the size.
 */
import { describe, expect, it } from 'vitest';
import { runBatch } from './support/fuzz.js';

const BATCHES = Number(process.env.FUZZ_BATCHES ?? 25);
const CALLS = Number(process.env.FUZZ_CALLS ?? 4_000);
const BASE = process.env.FUZZ_BASE ?? 'fencelab-fuzz';

describe('typed-input fuzz', () => {
  it(`${BATCHES} batches of ${CALLS} mixed calls: only typed errors, clean arena, callbacks exactly once`, async () => {
    const seeds = process.env.FUZZ_SEED ? [process.env.FUZZ_SEED] : Array.from({ length: BATCHES }, (_, i) => `${BASE}-${i}`);
    let calls = 0;
    const byCode: Record<string, number> = {};
    for (const seed of seeds) {
      const r = await runBatch(seed, CALLS, process.env.FUZZ_KEEP === '1');
      calls += r.calls;
      for (const [code, n] of Object.entries(r.errors)) byCode[code] = (byCode[code] ?? 0) + n;
      const replay = `replay: FUZZ_SEED=${seed} FUZZ_CALLS=${CALLS} npx vitest run test/fuzz.test.ts`;
      if (r.failures.length > 0 && process.env.FUZZ_KEEP === '1') {
        console.error(`${replay}\n${[...new Set(r.failures.map((f) => f.slice(0, 400)))].join('\n')}`);
        continue;
      }
      if (r.failures.length > 0) {
        console.error(`${replay}\n${r.failures.join('\n')}`);
        expect.fail(`${replay}\n${r.failures.join('\n')}`);
      }
    }
    console.log(`fuzz: ${calls} calls over ${seeds.length} batches; FenceErrors by code: ${JSON.stringify(byCode)}`);
    if (!process.env.FUZZ_SEED) expect(calls).toBeGreaterThanOrEqual(BATCHES * CALLS);
  });
});
