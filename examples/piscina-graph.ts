/**
 * Example: tasks with dependencies on a piscina pool — a diamond graph whose stages receive their
 * inputs' results, then a chain 50 times longer than the pool.
 *
 * Shows: createFencePool (the pool's module is this very file: its default export, wrapped in
 * fenceTask, is the task), runGraph (stages name their inputs in `deps` and read their results as
 * ctx.inputs), runWithFence with `deps` (each call returns the task's out-fence at once), taskResult.
 * A task is handed to a worker only once every fence it depends on has signaled, so no worker ever
 * sits waiting for a dependency: 100 chained tasks finish on a pool of 2 workers.
 * Run: npm run build && node dist/examples/piscina-graph.js
 * (piscina is an optional peer dependency of fencelab: npm install piscina)
 */
import { isMainThread } from 'node:worker_threads';
import { Arena, createFencePool, fenceTask, runGraph, runWithFence, taskResult, type Fence } from 'fencelab';

// The pool's workers run these. A task returns what it computed; the result travels through the
// arena to the tasks that depend on it (plain data, or anything structured-cloneable).

/** A graph stage: its name, applied to its inputs' results, e.g. "bundle(parse(fetch), lint(fetch))". */
export default fenceTask((payload, ctx) => {
  const inputs = Object.values(ctx.inputs) as string[];
  return inputs.length === 0 ? String(payload) : `${String(payload)}(${inputs.join(', ')})`;
});

/** A chain link: its one input plus one (run by name: `{ name: 'increment' }`). */
export const increment = fenceTask((_payload, ctx) => ((ctx.inputs['0'] as number | undefined) ?? 0) + 1);

if (isMainThread) {
  const arena = Arena.create({ bytes: 4 << 20 });
  // Always atomics: 'async' (a fence pool refuses anything else); its workers are watched, so a
  // worker that dies ends its task with -ENODEV instead of leaving locks held.
  const pool = createFencePool(arena, { filename: new URL(import.meta.url).href, minThreads: 2, maxThreads: 2 });

  // A diamond: parse and lint both need fetch; bundle needs both. Declared in any order.
  const run = runGraph(pool, arena, {
    bundle: { payload: 'bundle', deps: ['parse', 'lint'] },
    parse: { payload: 'parse', deps: ['fetch'] },
    lint: { payload: 'lint', deps: ['fetch'] },
    fetch: { payload: 'fetch' },
  });
  console.log(`main: graph submitted in the order ${run.order.join(', ')}`);
  const outcome = await run.done; // every stage's status, result or error; the run's references are put
  console.log(`main: graph ${outcome.ok ? 'ok' : 'failed'}, bundle = ${String(outcome.results.bundle)}`);

  // A chain: each task depends on the one before. runWithFence returns the out-fence at once; the
  // task took its own reference on its input, so ours can be put as soon as the next is submitted.
  let last: Fence | null = null;
  for (let i = 0; i < 100; i++) {
    const next: Fence = runWithFence(pool, arena, undefined, { name: 'increment', deps: last ? [last] : [] });
    last?.put();
    last = next;
  }
  const finished = await last!.waitAsync(10_000); // false on timeout
  const value = finished ? taskResult(last!) : undefined; // what the task returned (or throws what it threw)
  console.log(`main: chain of 100 on 2 workers ${finished ? 'finished' : 'timed out'}, last = ${String(value)}`);
  last!.put();

  await pool.destroy(); // ends the workers' pull loops; tasks not started would be cancelled
  console.log(`main: arena clean: ${arena.check().ok}`);
  process.exitCode = outcome.ok && value === 100 && arena.check().ok ? 0 : 1;
}
