/** Seeded randomness for worker fixtures: a failing run replays from its seed. */
import seedrandom from 'seedrandom';

/** Returns `rand(n)`: a seeded integer in 0..n-1. */
export function seededInt(seed: string | number): (n: number) => number {
  const rng = seedrandom(String(seed));
  return (n) => Math.floor(rng() * n);
}
