/**
 * Graphs of pool tasks: stages whose inputs are other stages' out-fences, each stage's result handed
 * to the stages that depend on it (ctx.inputs, keyed by stage name). Built on runWithFence: the whole
 * graph is submitted at once and the scheduler starts each stage when its inputs have signaled.
 */
import type { Arena } from '../arena/arena.js';
import { Errno, Errors, describeValue, optionsArg, isArrayArg, isInstance, isLiveObject } from '../errors.js';
import type { Fence } from '../fence/fence.js';
import { checkPool, encodeEnvelope, submitEncoded, taskResult, type FencePool } from './piscina.js';
import { cancelJob } from './finish.js';

/** One stage of a graph. */
export interface GraphNode {
  /** The stage's payload (travels through shared memory: plain data or structured-cloneable). */
  payload?: unknown;
  /** Names of the stages whose results this one takes as inputs (default none). */
  deps?: readonly string[];
  /** Export of the pool's module to run (default: the pool's task). */
  task?: string;
}

/** How every stage of a graph ended. */
export interface GraphOutcome<K extends string = string> {
  /** True when every stage returned (status 1). */
  ok: boolean;
  /** Out-fence status per stage: 1, or a negative errno (-EIO threw, -ECANCELED, a dependency's error…). */
  status: Record<K, number>;
  /** What each stage that returned returned. */
  results: Partial<Record<K, unknown>>;
  /** What each failed stage threw, or a FenceError with its fence's code. */
  errors: Partial<Record<K, unknown>>;
}

/** A submitted graph. */
export interface GraphRun<K extends string = string> {
  /** Each stage's out-fence, submitted in dependency order; valid until `done` settles (take a reference to keep one). */
  readonly fences: Readonly<Record<K, Fence>>;
  /** Stage names in the order they were submitted (every stage after its inputs). */
  readonly order: readonly K[];
  /** Settles once every stage's fence has signaled, after which the run's references are put. */
  readonly done: Promise<GraphOutcome<K>>;
}

/**
 * Submits a graph of stages to `pool`: `{ a: { payload }, b: { payload, deps: ['a'] }, … }`. Each
 * stage starts once every stage it names in `deps` has finished, and receives their results as
 * `ctx.inputs[name]`; a stage whose input failed never runs and its fence carries that error, so
 * an error reaches every descendant. `signal` cancels every stage not yet started (-ECANCELED).
 *
 * Threads: the pool's thread. Returns a {@link GraphRun} at once.
 * Throws EINVAL (not a fence pool or Arena, not an object, a stage or option key other than those
 * above, an unknown or duplicate dependency name, a cycle — named —, a payload that cannot travel
 * through shared memory); ENOMEM. The pool, the options and every stage (its payload encoded) are
 * checked before any is submitted, so a refusal submits nothing. Out of memory part way, the
 * stages already submitted are cancelled and their references put: those not started never run,
 * but one a worker took at once (no dependencies, a pull loop looking for work) may have started
 * and runs to its end.
 */
export function runGraph<K extends string>(
  pool: FencePool,
  arena: Arena,
  spec: Readonly<Record<K, GraphNode>>,
  options?: { signal?: AbortSignal },
): GraphRun<K> {
  checkPool(pool, arena, 'runGraph');
  const signal = optionsArg(options, 'runGraph', ['signal']).signal;
  if (signal !== undefined && !isInstance(signal, AbortSignal)) throw Errors.invalid(`runGraph: signal must be an AbortSignal, got ${describeValue(signal)}`);
  const order = topoOrder(spec);
  // Every payload encoded before the first stage is submitted: a stage submitted before one that
  // cannot travel may already have run by the time that one throws.
  const envelopes = order.map((name) => encodeEnvelope(spec[name].payload, spec[name].task, spec[name].deps ?? []));
  const fences = {} as Record<K, Fence>;
  try {
    order.forEach((name, i) => {
      const deps = (spec[name].deps ?? []) as K[];
      fences[name] = submitEncoded(pool, arena, envelopes[i], deps.map((d) => fences[d]), signal);
    });
  } catch (e) {
    for (const name of order) {
      const f = fences[name];
      if (!f) break;
      cancelJob(arena, f.fw, Errno.ECANCELED);
      f.put();
    }
    throw e;
  }
  return { fences, order, done: settle(order, fences) };
}

/** Waits for every stage, collects outcomes, puts the run's references. */
async function settle<K extends string>(order: K[], fences: Record<K, Fence>): Promise<GraphOutcome<K>> {
  const status = {} as Record<K, number>;
  const results: Partial<Record<K, unknown>> = {};
  const errors: Partial<Record<K, unknown>> = {};
  let ok = true;
  try {
    // Last submitted first: by the time it signals most others have, and their waits return at once.
    for (let i = order.length - 1; i >= 0; i--) await fences[order[i]].waitAsync();
    for (const name of order) {
      const f = fences[name];
      status[name] = f.status();
      try {
        results[name] = taskResult(f);
      } catch (e) {
        errors[name] = e;
        ok = false;
      }
    }
  } finally {
    for (const name of order) fences[name].put();
  }
  return { ok, status, results, errors };
}

/** Stage names with every stage after its dependencies (Kahn). Throws EINVAL. */
function topoOrder<K extends string>(spec: Readonly<Record<K, GraphNode>>): K[] {
  // isLiveObject: Object.keys of a revoked Proxy is the engine's TypeError.
  if (typeof spec !== 'object' || !isLiveObject(spec)) throw Errors.invalid(`runGraph needs an object of stages, got ${describeValue(spec)}`);
  const names = Object.keys(spec) as K[];
  const indegree = new Map<K, number>();
  const dependents = new Map<K, K[]>();
  for (const n of names) {
    const node = spec[n];
    if (node === null || typeof node !== 'object') throw Errors.invalid(`stage '${n}' must be an object`);
    optionsArg(node, `runGraph: stage '${n}'`, ['payload', 'deps', 'task']);
    const deps = node.deps ?? [];
    if (!isArrayArg(deps)) throw Errors.invalid(`stage '${n}': deps must be an array of stage names, got ${describeValue(deps)}`);
    if (node.task !== undefined && typeof node.task !== 'string') throw Errors.invalid(`stage '${n}': task must be a string`);
    const seen = new Set<string>();
    for (const d of deps as K[]) {
      if (typeof d !== 'string' || !Object.hasOwn(spec, d)) throw Errors.invalid(`stage '${n}' depends on unknown stage ${describeValue(d)}`);
      if (seen.has(d)) throw Errors.invalid(`stage '${n}' names '${d}' twice`);
      seen.add(d);
      let list = dependents.get(d);
      if (!list) dependents.set(d, (list = []));
      list.push(n);
    }
    indegree.set(n, deps.length);
  }
  const order: K[] = names.filter((n) => indegree.get(n) === 0);
  for (let i = 0; i < order.length; i++) {
    for (const m of dependents.get(order[i]) ?? []) {
      const left = indegree.get(m)! - 1;
      indegree.set(m, left);
      if (left === 0) order.push(m);
    }
  }
  if (order.length !== names.length) {
    const stuck = names.filter((n) => indegree.get(n)! > 0);
    throw Errors.invalid(`runGraph: the stages ${stuck.map((s) => `'${s}'`).join(', ')} form or hang on a cycle`);
  }
  return order;
}
