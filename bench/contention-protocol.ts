/** Control words shared by bench/contention.bench.ts and its worker. */
export const CTL_READY = 0; // workers attached and waiting
export const CTL_START = 1; // main: go
export const CTL_STOP = 2; // main: stop
export const CTL_WORDS = 4;
