/** Control words of a crew (bench/crew.ts), shared by the parent and its workers. */
export const CTL_READY = 0; // workers set up for the current cell (each adds 1)
export const CTL_START = 1; // the parent stores the cell's generation: go
export const CTL_STOP = 2; // the parent stores the cell's generation: stop
export const CTL_TOGETHER = 3; // workers of the current cell that start together (0: each starts when it wakes)
export const CTL_ARRIVED = 4; // workers of the current cell past START, at the start barrier (each adds 1)
export const CTL_WORDS = 8;
