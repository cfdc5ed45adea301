/**
 * The shared cells of the lock-kill fixture (an Int32Array over `shared`), for the fixture and the
 * test that reads them.
 */
export const COUNTER = 0; // plain reads and writes, inside the critical section only
export const VIOLATIONS = 1; // a lane found another lane inside the critical section
export const STOP = 2; // set by the test: lanes detach and report
export const ROUNDS = 3; // rounds completed by all lanes (Atomics)
export const PAUSE = 4; // set by the test while a replacement boots: lanes sleep between rounds
export const IN = 8; // + lane: 1 while the lane is inside the critical section
export const DONE = 24; // + lane: critical sections the lane completed (its replacements go on counting)
export const GO = 40; // + lane: the generation of the replacement allowed to start in the lane
export const MAX_LANES = 16;
export const CELLS = GO + MAX_LANES;
