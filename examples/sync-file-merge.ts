/**
 * Example: two producer workers export their fences as sync_file fds; a consumer worker merges the
 * two fds into one, inspects it and waits for both.
 *
 * Shows: SyncFile.create (an fd is a plain integer any thread can use), SyncFile.merge, .info,
 * .wait, .close. An fd belongs to the thread that created it and is closed when that thread leaves
 * the arena, so producers stay until the consumer has merged (the merged fd holds its own references).
 * Run: npm run build && node dist/examples/sync-file-merge.js
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Arena, Fence, SyncFile } from 'fencelab';

type Msg = { fd?: number; go?: boolean };
const start = (data: object) => new Worker(new URL(import.meta.url), { workerData: data });
const next = (w: Worker) => new Promise<Msg>((resolve) => w.once('message', resolve));

if (isMainThread) {
  const arena = Arena.create({ bytes: 1 << 20 });
  const producers = ['gpu', 'decoder'].map((name) => start({ role: 'producer', name, buffer: arena.buffer }));
  const exited = (w: Worker) => new Promise<number>((resolve) => w.once('exit', resolve)); // exit code
  const exits = producers.map(exited);
  for (const w of producers) arena.watch(w);
  const fds = await Promise.all(producers.map(async (w) => (await next(w)).fd!));
  const consumer = start({ role: 'consumer', buffer: arena.buffer, fds });
  arena.watch(consumer);
  exits.push(exited(consumer));
  await next(consumer); // merged: the producers may now signal and leave
  for (const w of producers) w.postMessage({ go: true });
  const codes = await Promise.all(exits);
  process.exitCode = codes.every((c) => c === 0) && arena.check().ok ? 0 : 1;
} else if (workerData.role === 'producer') {
  const arena = Arena.attach(workerData.buffer);
  const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 1 });
  parentPort!.postMessage({ fd: SyncFile.create(arena, fence, workerData.name) });
  await new Promise((resolve) => parentPort!.once('message', resolve)); // { go: true }
  fence.signal();
  fence.put();
  arena.detach(); // closes this thread's fd too
} else {
  const arena = Arena.attach(workerData.buffer);
  const [a, b] = workerData.fds as number[];
  const merged = SyncFile.merge(arena, a, b, 'both');
  const show = (when: string) => {
    const info = SyncFile.info(arena, merged); // status: 0 active, 1 signaled, < 0 an error
    console.log(`consumer: ${when}: '${info.name}' status ${info.status}, fences ${info.fences.map((f) => f.status).join(',')}`);
  };
  show('merged');
  parentPort!.postMessage({});
  const ok = SyncFile.wait(arena, merged, 5000); // blocks this worker only
  show(ok ? 'signaled' : 'timed out');
  if (!ok) process.exitCode = 1; // this worker's exit code
  SyncFile.close(arena, merged);
  arena.detach();
}
