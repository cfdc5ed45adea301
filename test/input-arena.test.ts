/**
 * Bad input to the Arena's entries: adopt's and create's options. Each is refused with a typed FenceError
 * before anything changes: the arena stays consistent and nothing leaks.
 */
import { describe, expect, it } from 'vitest';
import { Arena, FenceError } from '../src/index.js';
import { expectClean, rejects } from './support/core.js';

const arenaOf = () => Arena.create({ bytes: 1 << 20, maxFds: 64 });

/** Asserts `fn` throws a FenceError with `code` (for views whose arena cannot be checked through them). */
function throwsCode(fn: () => unknown, code: string): FenceError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected FenceError ${code}`).toBeInstanceOf(FenceError);
  expect((caught as FenceError).code).toBe(code);
  return caught as FenceError;
}

describe('arena.adopt options', () => {
  it('an unknown key, a non-boolean keep, an array or null are EINVAL naming the known key, and the block keeps its owner', () => {
    const a = arenaOf();
    const ref = a.alloc(16);
    const err = rejects(a, () => a.adopt(ref, { kep: true } as { keep?: boolean }), 'EINVAL');
    expect(err.message).toContain('keep');
    rejects(a, () => a.adopt(ref, { keep: 'yes' } as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, { keep: null } as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, [] as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, null as unknown as { keep?: boolean }), 'EINVAL');
    rejects(a, () => a.adopt(ref, 1 as unknown as { keep?: boolean }), 'EINVAL');
    a.adopt(ref, { keep: false });
    a.adopt(ref, {});
    a.adopt(ref);
    a.free(ref);
    expectClean(a);
    a.detach();
  });
});

describe('Arena.create options given as null', () => {
  it('each is EINVAL naming the option (undefined still means the default)', () => {
    for (const key of ['bytes', 'maxThreads', 'maxFds', 'lockKind', 'sanitize']) {
      const err = throwsCode(() => Arena.create({ bytes: 1 << 20, [key]: null } as never), 'EINVAL');
      expect(err.message).toContain(key);
    }
    const a = Arena.create({ bytes: 1 << 20, maxThreads: undefined, maxFds: undefined, lockKind: undefined, sanitize: undefined });
    expect(a.maxThreads).toBe(64);
    a.detach();
  });
});
