/** Control words of a crew (bench/crew.ts), shared by the parent and its workers. */
export const CTL_READY = 0; // workers set up for the current cell (each adds 1)
export const CTL_START = 1; // the parent stores the cell's generation: go
export const CTL_STOP = 2; // the parent stores the cell's generation: stop
export const CTL_WORDS = 4;
