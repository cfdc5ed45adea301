/**
 * Hang reports and `fencelab inspect`: an arena dump names the thread asleep on a fence and the
 * thread stuck on a lock with its holder; the hang watch writes that dump once progress stands
 * still; `inspect` prints a dump file, and asks a running stress for its dump.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Arena, Fence, SpinLock, analyzeHang, type ArenaDump } from '../src/index.js';
import { HangWatch, announcedProcesses, readDump, writeDump } from '../src/cli/inspect.js';
import { TestWorker } from './support/core.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fencelab-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Describes the arena until `ready` holds for the dump (the worker got to its blocking call), bounded. */
async function dumpWhen(arena: Arena, ready: (d: ArenaDump) => boolean): Promise<ArenaDump> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const d = arena.describe('test');
    if (ready(d)) return d;
    if (Date.now() > deadline) throw new Error(`the dump never showed the blocked thread:\n${JSON.stringify(d.threads, null, 1)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a hang, described', () => {
  it('names the thread asleep on a fence and the thread stuck on a lock, with its holder', async () => {
    const arena = Arena.create({ bytes: 2 << 20 });
    const fence = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 17 });
    const lock = SpinLock.create(arena);
    const sleeper = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'importer 2' });
    const holder = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'exporter 1' });
    const stuck = new TestWorker('lock-holder', { buffer: arena.buffer, name: 'importer 3' });
    await Promise.all([sleeper.next('ready'), holder.next('ready'), stuck.next('ready')]);
    await holder.ask({ type: 'lock', ref: lock.ref, timeoutMs: 60_000 }, 'locked');
    sleeper.post({ type: 'wait', handle: fence.handle, timeoutMs: 30_000 });
    stuck.post({ type: 'lock', ref: lock.ref, timeoutMs: 30_000 });
    const label = `${fence.context}:17`;
    const d = await dumpWhen(arena, (x) => x.threads.some((t) => t.waitingOn) && x.threads.some((t) => t.acquiring));
    const byName = (n: string) => d.threads.find((t) => t.name === n)!;
    expect(byName('importer 2').waitingOn).toMatchObject({ fence: label, handle: fence.handle });
    expect(byName('importer 3').acquiring).toMatchObject({ what: `lock ${lock.ref}`, holder: 'exporter 1' });
    expect(byName('exporter 1').locksHeld.map((l) => l.what)).toEqual([`lock ${lock.ref}`]);
    const f = d.fences.find((x) => x.label === label)!;
    expect(f.waiters.sleeping).toEqual(['importer 2']);
    const lines = analyzeHang(d);
    expect(lines.some((l) => l.startsWith(`importer 2 has been waiting`) && l.includes(`for fence ${label}`))).toBe(true);
    expect(lines).toContain(`importer 3 is blocked acquiring lock ${lock.ref} (@${lock.index * 4}), held by exporter 1`);

    // The hang watch takes the same dump once the progress counter stands still, and only once.
    const file = join(dir, 'hang.json');
    const watch = new HangWatch(arena, 1000, file);
    expect(watch.tick(5, 0)).toBeNull();
    expect(watch.tick(5, 999)).toBeNull();
    const taken = watch.tick(5, 1000)!;
    expect(taken.reason).toBe('hang: no progress for 1.0 s');
    expect(watch.tick(5, 5000)).toBeNull();
    expect(watch.dump).toBe(taken);
    const back = readDump(file);
    expect(back.threads.find((t) => t.name === 'importer 3')!.acquiring!.holder).toBe('exporter 1');

    fence.signal();
    expect((await sleeper.next('waited')).ok).toBe(true);
    await holder.ask({ type: 'unlock' }, 'unlocked');
    expect((await stuck.next('locked')).ok).toBe(true);
    await stuck.ask({ type: 'unlock' }, 'unlocked');
    for (const w of [sleeper, holder, stuck]) await w.ask({ type: 'exit' }, 'bye');
    // Nobody waits any more: the slots say so.
    const after = arena.describe();
    expect(after.threads.filter((t) => t.waitingOn || t.acquiring)).toEqual([]);
    fence.put();
  });
});

describe('fencelab inspect', () => {
  it('prints a dump file with what stands in the way', () => {
    const arena = Arena.create({ bytes: 1 << 20 });
    arena.trace.nameThread('main');
    const f = Fence.create(arena, { context: Fence.contextAlloc(arena), seqno: 3 });
    const file = join(dir, 'pending.json');
    writeDump(arena.describe('test'), file);
    const r = spawnSync(process.execPath, [MAIN, 'inspect', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('what stands in the way:');
    expect(r.stdout).toContain(`1 fences are pending (first: ${f.context}:3, created by main)`);
    expect(r.stdout).toContain(`${f.context}:3 pending; refs 1; inline lock`);
    f.signal();
    f.put();
  });

  it('refuses a file that is not a dump, and a dump file with --pid, with exit code 2', () => {
    const bad = spawnSync(process.execPath, [MAIN, 'inspect', MAIN], { encoding: 'utf8', timeout: 30_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('error:');
    const both = spawnSync(process.execPath, [MAIN, 'inspect', 'x.json', '--pid', '1'], { encoding: 'utf8', timeout: 30_000 });
    expect(both.status).toBe(2);
  });

  it('asks a running stress for its dump', async () => {
    const child = spawn(process.execPath, [MAIN, 'stress', '--duration', '60s', '--seed', 'inspect', '--kill-rate', '0', '--json'], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 60_000;
      while (!announcedProcesses().includes(child.pid!)) {
        if (Date.now() > deadline) throw new Error('the stress never announced itself');
        await new Promise((r) => setTimeout(r, 50));
      }
      // The run may still be starting its workers: ask again until they are in the dump (bounded).
      let d: ArenaDump;
      for (;;) {
        const r = spawnSync(process.execPath, [MAIN, 'inspect', '--pid', String(child.pid), '--json'], { encoding: 'utf8', timeout: 30_000 });
        expect(r.status, r.stderr).toBe(0);
        d = JSON.parse(r.stdout) as ArenaDump;
        const names = d.threads.map((t) => t.name);
        if (['exporter 1', 'exporter 2'].every((n) => names.includes(n)) || Date.now() > deadline) break;
      }
      expect(d.pid).toBe(child.pid);
      expect(d.reason).toBe('fencelab inspect');
      expect(d.threads.map((t) => t.name)).toEqual(expect.arrayContaining(['main', 'exporter 1', 'exporter 2']));
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    expect(existsSync(join(tmpdir(), `fencelab-${child.pid}.inspect`))).toBe(false);
  });
});
