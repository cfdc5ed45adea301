/**
 * A pull loop's adaptive linger (src/runtime/task.ts Linger): a job that comes after the loop parked
 * but soon after its last one sets the linger to 1.5 × that interval (at most 16 × lingerUs), so the
 * next such job finds the loop still spinning; a longer lull sets it back to lingerUs. The clock is
 * the test's (performance.now stubbed), so the policy is checked exactly.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Linger } from '../src/runtime/task.js';

let clockMs = 0;
afterEach(() => {
  vi.restoreAllMocks();
});

/** A Linger of `lingerUs` whose loop began looking at clock 0. */
function linger(lingerUs: number): Linger {
  clockMs = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => clockMs);
  const l = new Linger(lingerUs);
  l.looking();
  return l;
}

/** The loop parks, then takes a job `us` after it began looking. */
function parkThenTakeAfter(l: Linger, us: number): void {
  l.parked();
  clockMs = us / 1000;
  l.took();
}

describe('a pull loop linger', () => {
  it('grows to 1.5 × the interval of a job that came after the park, within 16 × lingerUs', () => {
    const l = linger(50);
    expect(l.us).toBe(50);
    parkThenTakeAfter(l, 200);
    expect(l.us).toBeCloseTo(300, 6);
    l.looking();
    clockMs = 0;
    l.looking();
    parkThenTakeAfter(l, 790); // 1.5 × 790 is past the cap
    expect(l.us).toBe(800);
  });

  it('goes back to lingerUs after a lull at least as long as the cap, and never below it', () => {
    const l = linger(50);
    parkThenTakeAfter(l, 400);
    expect(l.us).toBeCloseTo(600, 6);
    clockMs = 0;
    l.looking();
    parkThenTakeAfter(l, 800);
    expect(l.us).toBe(50);
    clockMs = 0;
    l.looking();
    parkThenTakeAfter(l, 10); // a job right after the park: the linger stays lingerUs
    expect(l.us).toBe(50);
  });

  it('is left alone by a job found while spinning, and stays 0 for lingerUs 0', () => {
    const l = linger(50);
    parkThenTakeAfter(l, 200);
    const grown = l.us;
    clockMs = 0;
    l.looking();
    clockMs = 5;
    l.took(); // no park since it began looking
    expect(l.us).toBe(grown);
    const zero = linger(0);
    parkThenTakeAfter(zero, 30);
    expect(zero.us).toBe(0);
  });
});
