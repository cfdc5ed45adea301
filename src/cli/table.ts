/** Plain-text tables for the command line (no colours: logs and pipes read them too). */

export function renderTable(head: string[], rows: (string | number)[][], align?: ('l' | 'r')[]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toLocaleString('en-US') : c)));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const a = align ?? head.map((_, i) => (i === 0 ? 'l' : 'r'));
  const fmt = (r: string[]) => r.map((c, i) => (a[i] === 'l' ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [fmt(head), w.map((n) => '─'.repeat(n)).join('  '), ...cells.map(fmt)].join('\n');
}

/** Formats microseconds compactly: 0.6 µs, 13 µs, 1.2 ms. */
export function fmtMicros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '–';
  if (us < 10) return `${us.toFixed(1)} µs`;
  if (us < 1000) return `${Math.round(us)} µs`;
  return `${(us / 1000).toFixed(1)} ms`;
}
