/**
 * The library's process warnings during a run: a reaper that meets something it cannot finish
 * (the release of a fence whose ops are not registered, a container callback that threw) warns
 * rather than throws, because it must go on. A stress run counts each one as a violation rather
 * than letting it pass as a line on stderr.
 */
import { FenceError } from '../index.js';

/** Whether process warning `w` comes from the library: a FenceError, or a FENCELAB_* code. */
function isLibraryWarning(w: Error): boolean {
  const code = (w as { code?: unknown }).code;
  return w instanceof FenceError || (typeof code === 'string' && code.startsWith('FENCELAB_'));
}

/** Collects the library's warnings emitted in this thread between {@link listen} and {@link close}. */
export class LibraryWarnings {
  /** Each warning as "name: message", in the order emitted. */
  readonly seen: string[] = [];
  private readonly onWarning = (w: Error): void => {
    if (isLibraryWarning(w)) this.seen.push(`${w.name}: ${w.message}`);
  };

  /** Starts listening (process 'warning'). */
  listen(): void {
    process.on('warning', this.onWarning);
  }

  /** Stops listening; what was seen stays. */
  close(): void {
    process.off('warning', this.onWarning);
  }
}
