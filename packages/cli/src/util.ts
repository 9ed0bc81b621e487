import path from 'node:path';
import { ConfigError, EdgecapError } from '@edgecap/core';

/** Exit codes: stable, documented in the README. */
export const Exit = { OK: 0, FAILURE: 1, USAGE: 2, CORRUPT: 3, MISMATCH: 4 } as const;

/**
 * Paths on the command line are relative to where the user typed the command; `pnpm edgecap`
 * runs scripts from the repo root, and says where the user was in INIT_CWD.
 */
export function userPath(p: string): string {
  return path.resolve(process.env.INIT_CWD ?? process.cwd(), p);
}

/** One clear line for the user (the whole stack only with --verbose). */
export function describeError(e: unknown, verbose: boolean): { text: string; code: number } {
  if (verbose && e instanceof Error) return { text: e.stack ?? e.message, code: e instanceof ConfigError ? Exit.USAGE : Exit.FAILURE };
  if (e instanceof ConfigError) return { text: `edgecap: ${e.message}`, code: Exit.USAGE };
  if (e instanceof EdgecapError) return { text: `edgecap: ${e.message} (${e.code})`, code: Exit.FAILURE };
  if (e instanceof Error) return { text: `edgecap: ${e.message}`, code: Exit.FAILURE };
  return { text: `edgecap: ${String(e)}`, code: Exit.FAILURE };
}

export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A plain text table (left-aligned first column, right-aligned numbers). */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
        .join('  ')
        .concat(ri === 0 ? `\n${w.map((x) => '-'.repeat(x)).join('  ')}` : ''),
    )
    .join('\n');
}

/** Resolve on the first of the given signals. */
export function onceSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (s: NodeJS.Signals): void => {
      for (const x of signals) process.off(x, handler);
      resolve(s);
    };
    for (const s of signals) process.on(s, handler);
  });
}
