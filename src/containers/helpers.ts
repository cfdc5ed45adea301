/**
 * Small container predicates of the kernel's headers: dma_fence_is_container and
 * dma_fence_match_context.
 */
import type { Fence } from '../fence/fence.js';
import { Errors, describeValue } from '../errors.js';
import { F_CONTEXT } from '../fence/layout.js';
import { isArrayFw } from './array.js';
import { arrayChild, arrayCount } from './arraychildren.js';
import { isChainFw } from './chain.js';
import { ownFenceArg } from './common.js';

/**
 * True when `f` is a fence array or a chain link (kernel dma_fence_is_container): a fence that
 * stands for others, which arrays may not hold (unwrap it first).
 * Threads: any. Throws EINVAL (not a Fence), EBADF (released).
 */
export function isContainer(f: Fence): boolean {
  const fw = ownFenceArg(f, 'fence');
  const i32 = f.arena.i32;
  return isArrayFw(i32, fw) || isChainFw(i32, fw);
}

/**
 * True when `f` is on fence context `context` (kernel dma_fence_match_context): for a fence array,
 * when every child is; for any other fence, its own context.
 * Threads: any. Throws EINVAL (not a Fence, context not an integer ≥ 0), EBADF (released).
 */
export function matchContext(f: Fence, context: number): boolean {
  if (!Number.isInteger(context) || context < 0) throw Errors.invalid(`matchContext: context must be an integer ≥ 0, got ${describeValue(context)}`);
  const fw = ownFenceArg(f, 'fence');
  const i32 = f.arena.i32;
  if (!isArrayFw(i32, fw)) return f.context === context;
  const n = arrayCount(f.arena, fw);
  for (let i = 0; i < n; i++) if (i32[arrayChild(f.arena, fw, i) + F_CONTEXT] !== context) return false;
  return true;
}
