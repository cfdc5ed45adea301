/** The runtime layer's thread-slot field: whether a dispatcher listens on the slot's doorbell. */
import { T_LAYERS_END } from '../arena/layout.js';
import { defineStruct } from '../arena/struct.js';
import { T_FENCE_END } from '../fence/layout.js';

export const { DISPATCHING: T_DISPATCHING, END: T_RUNTIME_END } = defineStruct(
  'runtime thread slot',
  { DISPATCHING: 1 }, // 1 while a dispatcher listens on the doorbell
  { base: T_FENCE_END, limit: T_LAYERS_END },
);
