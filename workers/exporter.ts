/**
 * Exporter worker: runs the seed's driver. For each of `count` operations: submit (out-fence with
 * the driver's lock mode), add an exporter-side callback (tally), export it (sync-file fd or fence
 * handle with a reference) to a random importer port with the operation's handle, then execute
 * (simulated work of a random duration while consuming the command ring), which signals and frees
 * it — unless a command ended it first. Operations are pipelined `depth` deep so that commands can
 * reach them before they execute.
 *
 * workerData: { buffer, driver (handle), index, count, depth, minUs, maxUs, seed, export: 'fd' | 'handle',
 *   tally?: SharedArrayBuffer, stride, hang?: boolean }; then one message { type: 'start', ports: MessagePort[] }
 *   (transferred: one port per importer) starts the run.
 * Tally (per operation i = index * count + k, `stride` words): [0] exporter callback runs.
 * Posts { type: 'ready' }, then { type: 'done', results, sent } — results: statuses execute returned
 * (1 or -ECANCELED), sent: fences posted per port; then any message ({ type: 'exit' }) makes it
 * detach (closing the fds it created that nobody closed) and exit; with `hang`, submits everything and then never
 * executes (for recovery tests): posts { type: 'submitted', handles, sent }.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import { Arena, Driver, drain, pendingCallbacks, setAutoDispatch, waitInbox, type Operation } from '../src/index.js';

interface Data {
  buffer: SharedArrayBuffer;
  driver: number;
  index: number;
  count: number;
  depth: number;
  minUs: number;
  maxUs: number;
  seed: string;
  export: 'fd' | 'handle';
  tally?: SharedArrayBuffer;
  stride: number;
  hang?: boolean;
}

const wd = workerData as Data;
// This worker blocks in execute(); it drains its inbox itself instead of running a dispatcher.
setAutoDispatch(false);
const arena = Arena.attach(wd.buffer);
const driver = Driver.fromHandle(arena, wd.driver);
const rand = seedrandom(wd.seed);
const tally = wd.tally ? new Int32Array(wd.tally) : null;
let ports: MessagePort[] = [];
/** Fences sent to each importer port (the importers are told how many to expect). */
let sent: number[] = [];
parentPort!.postMessage({ type: 'ready', slot: arena.slot });

function submitOne(k: number): Operation {
  const i = wd.index * wd.count + k;
  const dur = Math.floor(wd.minUs + rand() * (wd.maxUs - wd.minUs));
  const op = driver.submit({ durationUs: dur, payload: [k, wd.index] });
  if (tally) op.fence.addCallback(() => Atomics.add(tally, i * wd.stride, 1));
  const p = Math.floor(rand() * ports.length);
  const port = ports[p];
  if (port) {
    sent[p]++;
    // Export before the operation's handle leaves this thread: afterwards anyone may end it.
    const msg = wd.export === 'fd' ? { type: 'fence', fd: op.exportFd(), op: op.handle, driver: wd.driver, index: i }
      : { type: 'fence', handle: op.exportHandle(), op: op.handle, driver: wd.driver, index: i };
    port.postMessage(msg);
  }
  return op;
}

parentPort!.once('message', (m: { type: string; ports: MessagePort[] }) => {
  ports = m.ports;
  sent = new Array<number>(ports.length).fill(0);
  run();
});

function run(): void {
try {
  const results: number[] = [];
  const queue: Operation[] = [];
  let next = 0;
  if (wd.hang) {
    while (next < wd.count) queue.push(submitOne(next++));
    parentPort!.postMessage({ type: 'submitted', handles: queue.map((o) => o.handle), sent });
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  }
  while (next < wd.count || queue.length > 0) {
    while (next < wd.count && queue.length < wd.depth) queue.push(submitOne(next++));
    results.push(driver.execute(queue.shift()!));
    drain(arena);
  }
  // Callbacks of ours that other threads signaled (cancels) arrive in our inbox: wait for all.
  const deadline = performance.now() + 10_000;
  while (pendingCallbacks() > 0 && performance.now() < deadline) waitInbox(arena, 50);
  parentPort!.postMessage({ type: 'done', results, sent, pending: pendingCallbacks() });
  for (const p of ports) p.close();
  // Our fds stay open until the importers took them (detach closes what we created): wait.
  parentPort!.once('message', () => {
    arena.detach();
    parentPort!.close();
  });
} catch (e) {
  parentPort!.postMessage({ type: 'error', code: (e as { code?: string }).code, message: String((e as Error)?.stack ?? e) });
}
}
