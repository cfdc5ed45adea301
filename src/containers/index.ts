/** Containers: fence array, fence chain (timeline), unwrap and merge (kernel dma-fence-array/chain/unwrap). */
export { FenceArray } from './array.js';
export type { FenceArrayOptions } from './array.js';
export { FenceChain } from './fencechain.js';
export { unwrapFences, mergeFences, dedupArray } from './unwrap.js';
export { isContainer, matchContext } from './helpers.js';
export { FenceMemory } from './memory.js';
import './linkcheck.js'; // registers the containers' part of arena.check()
