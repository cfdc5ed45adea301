/**
 * Progress for long runs: a live bar on a TTY (cli-progress), plain periodic lines otherwise
 * (CI logs), nothing with --json (stdout stays machine-readable; progress goes to stderr).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` of `total` (units the caller picks); `fields` are shown after the bar. */
  update(done: number, fields: Record<string, string | number>): void;
  stop(): void;
}

export function createProgress(title: string, total: number, opts: { quiet: boolean; intervalMs?: number }): Progress {
  if (opts.quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${title} [{bar}] {percentage}% | {info}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return {
      update(done, fields) {
        bar.update(Math.min(done, total), { info: formatFields(fields) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  const every = opts.intervalMs ?? 5000;
  let last = 0;
  return {
    update(done, fields) {
      const now = Date.now();
      if (now - last < every) return;
      last = now;
      process.stderr.write(`${title}: ${Math.min(100, Math.floor((100 * done) / Math.max(1, total)))}% ${formatFields(fields)}\n`);
    },
    stop() {},
  };
}

function formatFields(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toLocaleString('en-US') : v}`)
    .join(' | ');
}
