/**
 * The arena dump (what `arena.describe()` returns and `fencelab inspect` prints): a snapshot of
 * everything live, in the spirit of the kernel's sync_debug file — fences with their state, lock
 * and waiters, timelines and their points, held locks and their owners, sync-file fds, driver
 * operations, and the threads with what each one is blocked on. Plain data, so that it can be
 * written to a file and read back by another process.
 *
 * Also here: the text rendering, and the hang analysis that names, for every blocked thread, the
 * fence or lock it waits for and who holds what stands in its way.
 */

/** The `format` field of every dump. */
export const DUMP_FORMAT = 'fencelab-dump';
/** The `version` field of the dumps this fencelab writes and reads. */
export const DUMP_VERSION = 1;

/** A thread attached to the arena, in an {@link ArenaDump}. */
export interface DumpThread {
  /** Its thread slot. */
  slot: number;
  /** Its attach serial: 1 for the arena's first thread, counting every attach since (a reused slot gets a new one). */
  serial: number;
  /** Node's threadId of the thread (0: the main thread). */
  threadId: number;
  /** Its name (`arena.trace.nameThread`; default "main" or "thread N"), "(dead)" appended while it is being reaped. */
  name: string;
  /** 'live', or 'dead' while its reaper runs. */
  state: 'live' | 'dead';
  /** The fence it sleeps on in a blocking wait. */
  waitingOn?: {
    /** The fence's `context:seqno`, or `@offset (released)` when it no longer exists. */
    fence: string;
    /** The fence's handle. */
    handle: number;
    /** How long it has been waiting (ms). */
    forMs: number;
  };
  /** The lock word it is trying to acquire (a contended lock). */
  acquiring?: {
    /** Byte offset of the lock word. */
    lock: number;
    /** What the word belongs to ("inline lock of fence 3:7", "lock of operation 12", …). */
    what: string;
    /** The thread that holds it, or "nobody". */
    holder: string;
  };
  /** Lock words it holds (robust-listed ones and fence inline locks). */
  locksHeld: {
    /** Byte offset of the lock word. */
    lock: number;
    /** What the word belongs to. */
    what: string;
  }[];
  /** Callbacks queued in its inbox, not yet run. */
  inboxQueued: number;
  /** True when a dispatcher listens on its doorbell. */
  dispatching: boolean;
}

/** A live fence, in an {@link ArenaDump} (the arena's stub fence is left out). */
export interface DumpFence {
  /** Its handle. */
  handle: number;
  /** `context:seqno`. */
  label: string;
  /** Its fence context. */
  context: number;
  /** Its sequence number on that context. */
  seqno: number;
  /** Registered ops name ("fencelab:driver", "fencelab:sw_sync", …). */
  ops: string;
  /** The ops' driver name while pending; "detached-driver" once signaled (the ops are detached). */
  driver: string;
  /** The ops' timeline name while pending; "signaled-timeline" once signaled. */
  timeline: string;
  /** Pending, signaled with status 1, or signaled with an error. */
  state: 'pending' | 'signaled' | 'error';
  /** Kernel status: 0 pending, 1 signaled, negative errno. */
  status: number;
  /** The error's name ("ETIMEDOUT", …) when status is negative. */
  error?: string;
  /** References held on it. */
  refcount: number;
  /** The lock the fence takes. */
  lock: {
    /** Its own lock word, or one borrowed from another block. */
    mode: 'inline' | 'borrowed';
    /** Byte offset of the lock word. */
    word: number;
    /** The thread that holds it, or null when free (or when a borrowed word dangles). */
    holder: string | null;
    /** True when the word carries the owner-died mark (a holder died and it was taken over or released). */
    ownerDied: boolean;
    /** Borrowed: what the lock word belongs to, and whether that block is gone (the fence's lock dangles). */
    lender?: string;
    /** Borrowed: true when the lender's block was freed (the fence's lock word lies in freed memory). */
    dangling?: boolean;
  };
  /** Threads asleep in a blocking wait on it; `flagged` when some waiter (async ones too) asked to be woken. */
  waiters: {
    /** Names of the threads asleep in a blocking wait on it. */
    sleeping: string[];
    /** True when the fence's waiters flag is set: some waiter asked the signaler to wake it. */
    flagged: boolean;
  };
  /** Callbacks still pending on it. */
  callbacks: {
    /** The thread the callback belongs to (where a function callback runs). */
    owner: string;
    /** A function callback, a waiter's wake-up, or one of the library's own (containers, scheduler, sync files). */
    kind: 'function' | 'wake' | 'library';
  }[];
  /** True once signaling was enabled (a callback or waiter asked for it: kernel ENABLE_SIGNAL_BIT). */
  signalingEnabled: boolean;
  /** The thread that created it. */
  createdBy: string;
}

/** An sw_sync timeline, in an {@link ArenaDump}. */
export interface DumpTimeline {
  /** Its handle. */
  handle: number;
  /** The name it was created with. */
  name: string;
  /** Its fence context. */
  context: number;
  /** Its current value: points up to it are signaled. */
  value: number;
  /** True once closed (its remaining points got -ENOENT). */
  closed: boolean;
  /** Its points still in the timeline's list. */
  points: {
    /** The point's value (its fence's seqno). */
    seqno: number;
    /** Pending, signaled, or signaled with an error. */
    state: 'pending' | 'signaled' | 'error';
    /** References held on the point's fence. */
    refcount: number;
  }[];
}

/** A held (or waited-for) lock word, in an {@link ArenaDump}. */
export interface DumpLock {
  /** Byte offset of the lock word. */
  lock: number;
  /** What the word belongs to ("lock 4294967421", "inline lock of fence 3:7", "fd entry 2 lock", …). */
  what: string;
  /** The thread that holds it, "nobody (the word does not name a holder)" when only waiters point at it. */
  holder: string;
  /** True when the word carries the owner-died mark. */
  ownerDied: boolean;
  /** Threads blocked acquiring it. */
  waiting: string[];
}

/** An open sync-file fd, in an {@link ArenaDump}. */
export interface DumpFd {
  /** The fd (the integer SyncFile functions take). */
  fd: number;
  /** The sync file's name ('' when it has none). */
  name: string;
  /** `context:seqno` of the fence it holds. */
  fence: string;
  /** That fence's status: 0 pending, 1 signaled, negative errno. */
  status: number;
  /** The thread the fd belongs to (it is closed when that thread leaves). */
  owner: string;
}

/** A driver operation not yet freed, in an {@link ArenaDump}. */
export interface DumpOperation {
  /** Its handle. */
  handle: number;
  /** Its per-driver number. */
  id: number;
  /** 'being submitted', 'submitted', 'running', 'finishing' or 'ended'. */
  state: string;
  /** `context:seqno` of its out-fence, or "none yet". */
  fence: string;
  /** The thread that submitted it. */
  owner: string;
}

/**
 * A snapshot of everything live in an arena (`arena.describe()`, `fencelab inspect`): plain data,
 * JSON-safe, so it can be written to a file and read by another process ({@link assertDump},
 * {@link renderDump}, {@link analyzeHang}).
 */
export interface ArenaDump {
  /** Always `'fencelab-dump'`. */
  format: typeof DUMP_FORMAT;
  /** The layout version of the dump (1 here; {@link assertDump} refuses any other). */
  version: typeof DUMP_VERSION;
  /** When it was taken (ISO 8601). */
  takenAt: string;
  /** The process that took it. */
  pid: number;
  /** Why it was taken ("hang: no progress for 5 s", "inspect"). */
  reason?: string;
  /** The arena as a whole. */
  arena: {
    /** Size of the buffer. */
    bytes: number;
    /** Bytes of live blocks, headers included. */
    used: number;
    /** Thread slots. */
    maxThreads: number;
    /** Default lock kind. */
    lockKind: string;
    /** True when the sanitizer is on. */
    sanitize: boolean;
    /** Stale accesses the sanitizer recorded (counting mode). */
    useAfterFree: number;
    /** Trace categories being recorded (empty: tracing off). */
    tracing: string[];
  };
  /** Attached threads, live and being reaped. */
  threads: DumpThread[];
  /** Live fences (the stub left out). */
  fences: DumpFence[];
  /** sw_sync timelines. */
  timelines: DumpTimeline[];
  /** Held lock words, and words threads wait for. */
  locks: DumpLock[];
  /** Open sync-file fds. */
  fds: DumpFd[];
  /** Driver operations not yet freed. */
  operations: DumpOperation[];
  /** Problems the walk met (a torn list while threads ran, a truncated list). */
  notes: string[];
}

const NAMED_LOCK = { lock: 'number', what: 'string' } as const;
/** What {@link renderDump} and {@link analyzeHang} read of a dump, field by field. */
const DUMP_SHAPE: Shape = {
  takenAt: 'string',
  pid: 'number',
  'reason?': 'string',
  arena: { bytes: 'number', used: 'number', maxThreads: 'number', lockKind: 'string', sanitize: 'boolean', useAfterFree: 'number', tracing: ['string'] },
  threads: [{
    slot: 'number', threadId: 'number', name: 'string', state: 'string', inboxQueued: 'number', dispatching: 'boolean',
    'waitingOn?': { fence: 'string', forMs: 'number' }, 'acquiring?': { ...NAMED_LOCK, holder: 'string' }, locksHeld: [NAMED_LOCK],
  }],
  fences: [{
    label: 'string', state: 'string', 'error?': 'string', refcount: 'number', driver: 'string', timeline: 'string', createdBy: 'string',
    lock: { mode: 'string', holder: 'string|null', ownerDied: 'boolean', 'lender?': 'string', 'dangling?': 'boolean' },
    waiters: { sleeping: ['string'], flagged: 'boolean' }, callbacks: [{ owner: 'string', kind: 'string' }],
  }],
  timelines: [{ name: 'string', context: 'number', value: 'number', closed: 'boolean', points: [{ seqno: 'number', state: 'string', refcount: 'number' }] }],
  locks: [{ ...NAMED_LOCK, holder: 'string', ownerDied: 'boolean', waiting: ['string'] }],
  fds: [{ fd: 'number', name: 'string', fence: 'string', status: 'number', owner: 'string' }],
  operations: [{ id: 'number', state: 'string', fence: 'string', owner: 'string' }],
  notes: ['string'],
};

/**
 * Checks that `x` is a dump this version reads, deep enough that {@link renderDump} and
 * {@link analyzeHang} cannot crash on it. Any thread. Returns nothing. Throws EINVAL naming what
 * is wrong (`dump.threads[0] lacks \`slot\``).
 */
export function assertDump(x: unknown): asserts x is ArenaDump {
  checkShape(x, {}, 'dump');
  const d = x as Partial<ArenaDump>;
  if (d.format !== DUMP_FORMAT) throw Errors.invalid(`dump: not a fencelab arena dump (format ${describeValue(d.format)})`);
  if (d.version !== DUMP_VERSION) throw Errors.invalid(`dump: arena dump version ${describeValue(d.version)}, this fencelab reads version ${DUMP_VERSION}`);
  checkShape(x, DUMP_SHAPE, 'dump');
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

/** The dump as text, section by section (sync_debug style). Any thread. Throws EINVAL for what {@link assertDump} refuses. */
export function renderDump(d: ArenaDump): string {
  assertDump(d);
  const out: string[] = [];
  out.push(`fencelab arena dump — pid ${d.pid}, ${d.takenAt}${d.reason ? ` (${d.reason})` : ''}`);
  const a = d.arena;
  out.push(
    `arena: ${a.bytes} bytes, ${a.used} in use, ${a.maxThreads} thread slots, ${a.lockKind} locks, sanitizer ${a.sanitize ? 'on' : 'off'}` +
      `${a.useAfterFree ? `, ${a.useAfterFree} use-after-free caught` : ''}, tracing ${a.tracing.length ? a.tracing.join('+') : 'off'}`,
  );
  out.push('', `threads (${d.threads.length}):`);
  for (const t of d.threads) {
    const bits = [`slot ${t.slot}`, `threadId ${t.threadId}`];
    if (t.state !== 'live') bits.push(t.state);
    if (t.waitingOn) bits.push(`waits for fence ${t.waitingOn.fence} for ${fmtMs(t.waitingOn.forMs)}`);
    if (t.acquiring) bits.push(`acquiring ${t.acquiring.what} (@${t.acquiring.lock}) held by ${t.acquiring.holder}`);
    if (t.locksHeld.length) bits.push(`holds ${t.locksHeld.map((l) => l.what).join(', ')}`);
    if (t.inboxQueued) bits.push(`${t.inboxQueued} callbacks queued`);
    if (t.dispatching) bits.push('dispatcher on');
    out.push(`  ${t.name}: ${bits.join('; ')}`);
  }
  out.push('', `fences (${d.fences.length} live):`);
  for (const f of d.fences) {
    const lock = `${f.lock.mode} lock${f.lock.holder ? ` held by ${f.lock.holder}` : ''}${f.lock.ownerDied ? ' (owner died)' : ''}` +
      `${f.lock.lender ? ` of ${f.lock.lender}${f.lock.dangling ? ' — DANGLING: that block was freed' : ''}` : ''}`;
    const bits = [`${f.state}${f.error ? ` ${f.error}` : ''}`, `refs ${f.refcount}`, lock, `${f.driver}/${f.timeline}`, `created by ${f.createdBy}`];
    if (f.waiters.sleeping.length) bits.push(`waiters: ${f.waiters.sleeping.join(', ')}`);
    else if (f.waiters.flagged && f.state === 'pending') bits.push('waiters: yes (async)');
    if (f.callbacks.length) bits.push(`callbacks: ${f.callbacks.map((c) => `${c.kind} of ${c.owner}`).join(', ')}`);
    out.push(`  ${f.label} ${bits.join('; ')}`);
  }
  if (d.timelines.length) {
    out.push('', `timelines (${d.timelines.length}):`);
    for (const t of d.timelines) {
      out.push(`  ${t.name || '(unnamed)'}: context ${t.context}, value ${t.value}${t.closed ? ', closed' : ''}`);
      for (const p of t.points) out.push(`    point ${p.seqno}: ${p.state}, refs ${p.refcount}`);
    }
  }
  out.push('', `held locks (${d.locks.length}):`);
  for (const l of d.locks)
    out.push(`  @${l.lock} ${l.what}: held by ${l.holder}${l.ownerDied ? ' (owner died)' : ''}${l.waiting.length ? `; waiting: ${l.waiting.join(', ')}` : ''}`);
  if (d.fds.length) {
    out.push('', `sync-file fds (${d.fds.length}):`);
    for (const f of d.fds) out.push(`  fd ${f.fd}${f.name ? ` "${f.name}"` : ''}: fence ${f.fence} (status ${f.status}), owned by ${f.owner}`);
  }
  if (d.operations.length) {
    out.push('', `driver operations (${d.operations.length} live):`);
    for (const o of d.operations) out.push(`  operation ${o.id}: ${o.state}, fence ${o.fence}, submitted by ${o.owner}`);
  }
  if (d.notes.length) out.push('', 'notes:', ...d.notes.map((n) => `  ${n}`));
  return out.join('\n');
}

/**
 * What stands in the way, in sentences: every thread blocked on a fence or a lock, the fence's or
 * lock's state and who holds it, and cycles of threads waiting on each other's locks. Empty when
 * nothing is blocked and nothing is pending. Any thread. Throws EINVAL for what {@link assertDump} refuses.
 */
export function analyzeHang(d: ArenaDump): string[] {
  assertDump(d);
  const out: string[] = [];
  const fences = new Map(d.fences.map((f) => [f.label, f]));
  const locks = new Map(d.locks.map((l) => [l.lock, l]));
  for (const t of d.threads) {
    if (t.waitingOn) {
      const f = fences.get(t.waitingOn.fence);
      const detail = f
        ? `${f.state}, ${f.refcount} references, created by ${f.createdBy}, ${f.lock.mode} lock ${f.lock.holder ? `held by ${f.lock.holder}` : 'free'}` +
          `${f.lock.dangling ? ' (its lender was freed: the lock dangles)' : ''}`
        : 'no longer live';
      out.push(`${t.name} has been waiting ${fmtMs(t.waitingOn.forMs)} for fence ${t.waitingOn.fence} (${detail})`);
    }
    if (t.acquiring) {
      const l = locks.get(t.acquiring.lock);
      out.push(`${t.name} is blocked acquiring ${t.acquiring.what} (@${t.acquiring.lock}), held by ${l ? l.holder : t.acquiring.holder}${l?.ownerDied ? ' (owner died)' : ''}`);
    }
  }
  // Lock-wait cycles: thread → holder of the lock it acquires → …
  const holderOf = new Map<string, string>();
  for (const t of d.threads) if (t.acquiring) holderOf.set(t.name, locks.get(t.acquiring.lock)?.holder ?? t.acquiring.holder);
  const reported = new Set<string>();
  for (const start of holderOf.keys()) {
    const path = [start];
    let at = holderOf.get(start);
    while (at !== undefined && !path.includes(at)) {
      path.push(at);
      at = holderOf.get(at);
    }
    if (at !== undefined && at === start) {
      const cycle = [...path].sort().join('|');
      if (!reported.has(cycle)) {
        reported.add(cycle);
        out.push(`deadlock: ${[...path, start].join(' → ')} (each waits for a lock the next one holds)`);
      }
    }
  }
  const pending = d.fences.filter((f) => f.state === 'pending');
  if (out.length === 0 && pending.length > 0)
    out.push(`no thread is blocked in a wait or a lock; ${pending.length} fences are pending (first: ${pending[0].label}, created by ${pending[0].createdBy})`);
  return out;
}
import { describeValue, Errors } from '../errors.js';
import { checkShape, type Shape } from './shape.js';
