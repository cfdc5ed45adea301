/**
 * Task module of bench/piscina.bench.ts: the same trivial task body as a fence task (the pool's
 * default export, run by the scheduler's pull loops) and as a plain piscina handler (`plain`, for
 * the pool.run baselines), so that both sides measure scheduling, not work.
 */
import { fenceTask } from '../src/index.js';

function body(p: unknown): number {
  return (typeof p === 'number' ? p : 0) + 1;
}

export default fenceTask((p) => body(p));

export function plain(p: unknown): number {
  return body(p);
}
