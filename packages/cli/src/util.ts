import { EventEmitter } from 'node:events';
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { ConfigError, EdgecapError, ErrorCodes } from '@edgecap/core';

/** Exit codes: stable, documented in the README. */
export const Exit = { OK: 0, FAILURE: 1, USAGE: 2, CORRUPT: 3, MISMATCH: 4 } as const;

/**
 * Paths on the command line are relative to where the user typed the command; `pnpm edgecap`
 * runs scripts from the repo root, and says where the user was in INIT_CWD.
 */
export function userPath(p: string): string {
  return path.resolve(process.env.INIT_CWD ?? process.cwd(), p);
}

/** A bad flag or argument, found after parsing: one line naming it, exit 2. */
export class UsageError extends EdgecapError {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(ErrorCodes.CONFIG_INVALID, `${flag}: ${message}`, { details: { flag } });
    this.name = 'UsageError';
  }
}

/** Invalid config or usage: ConfigError, UsageError, or any error with the CONFIG_INVALID code (e.g. a listen address). */
function isUsage(e: unknown): boolean {
  return e instanceof ConfigError || (e instanceof EdgecapError && e.code === ErrorCodes.CONFIG_INVALID);
}

/** One clear line for the user (the whole stack only with --verbose). */
export function describeError(e: unknown, verbose: boolean): { text: string; code: number } {
  if (verbose && e instanceof Error) return { text: e.stack ?? e.message, code: isUsage(e) ? Exit.USAGE : Exit.FAILURE };
  if (isUsage(e)) return { text: `edgecap: ${(e as Error).message}`, code: Exit.USAGE };
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

/**
 * A commander argParser for a number flag (`--seconds`, `--pg-pool-size`, ...): anything but a
 * finite number in range is a usage error naming the flag (commander adds the flag and value).
 */
export function numberArg(o: { integer?: boolean; min?: number; max?: number }): (v: string) => number {
  const kind = o.integer ? 'an integer' : 'a number';
  const range = o.min !== undefined && o.max !== undefined ? ` from ${o.min} to ${o.max}` : o.min !== undefined ? ` >= ${o.min}` : o.max !== undefined ? ` <= ${o.max}` : '';
  return (v) => {
    // Number('') and Number(' ') are 0: an empty value is not a number
    const n = v.trim() === '' ? NaN : Number(v);
    if (!Number.isFinite(n) || (o.integer && !Number.isInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
      throw new InvalidArgumentError(`Expected ${kind}${range}.`);
    }
    return n;
  };
}

/** A commander argParser for `[HOST:]PORT` (host defaults elsewhere): checks the port, keeps the text. */
export function hostPortArg(v: string): string {
  const i = v.lastIndexOf(':');
  const host = i < 0 ? '' : v.slice(0, i);
  numberArg({ integer: true, min: 0, max: 65535 })(i < 0 ? v : v.slice(i + 1));
  if (i >= 0 && host === '') throw new InvalidArgumentError('Expected [HOST:]PORT.');
  return v;
}

/**
 * The reader of our stdout went away (`edgecap inspect DIR | head -1`). Like SIGPIPE for a C
 * tool: the command stops producing and exits 0, quietly.
 */
export class OutputClosedError extends Error {
  constructor() {
    super('stdout was closed by its reader');
    this.name = 'OutputClosedError';
  }
}

/** What the commands write data to: process.stdout through StdoutWriter, or any stream (tests). */
export interface Out {
  write(s: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Write `s`; wait only when the stream asks to (no await per line otherwise). */
export function writeOut(out: Out, s: string): Promise<void> | undefined {
  return out.write(s) ? undefined : new Promise((res) => out.once('drain', () => res()));
}

/**
 * stdout for commands that print data. An EPIPE (or a write to a stream it destroyed) is not an
 * error: the stream is marked closed, anyone waiting for 'drain' is released, and the next
 * write throws OutputClosedError, which main() turns into a quiet exit 0. Pipe writes are
 * synchronous on Linux but their EPIPE arrives as an event, so every YIELD_BYTES written the
 * writer asks its caller to wait (a 'drain' on the next turn): a caller that honours
 * backpressure lets the event in and stops within that many bytes.
 */
export class StdoutWriter extends EventEmitter {
  static readonly YIELD_BYTES = 64 * 1024;
  private sinceYield = 0;
  private waiting = false;
  closed = false;

  constructor(private readonly dest: NodeJS.WriteStream = process.stdout) {
    super();
    guardStdout(dest, () => {
      this.closed = true;
      this.emit('drain');
    });
    dest.on('drain', () => this.release());
  }

  get isTTY(): boolean {
    return this.dest.isTTY === true;
  }

  write(s: string): boolean {
    if (this.closed || this.dest.destroyed) throw new OutputClosedError();
    const ok = this.dest.write(s);
    this.sinceYield += s.length;
    if (ok && this.sinceYield < StdoutWriter.YIELD_BYTES) return true;
    this.sinceYield = 0;
    if (ok) setImmediate(() => this.release());
    this.waiting = true;
    return false;
  }

  private release(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.emit('drain');
  }
}

const guarded = new WeakMap<NodeJS.WriteStream, (() => void)[]>();

/**
 * Make a closed stdout harmless: EPIPE (the reader exited) and writes after it are swallowed and
 * reported to `onClosed`; any other stdout error is one line on stderr and exit 1. Installed once
 * per stream, before any output (commander's help writes to stdout too).
 */
export function guardStdout(dest: NodeJS.WriteStream = process.stdout, onClosed?: () => void): void {
  let subs = guarded.get(dest);
  if (!subs) {
    const list: (() => void)[] = [];
    subs = list;
    guarded.set(dest, list);
    dest.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') {
        for (const f of list.splice(0)) f();
        return;
      }
      process.stderr.write(`edgecap: cannot write to stdout: ${e.message}\n`);
      process.exit(Exit.FAILURE);
    });
  }
  if (onClosed) subs.push(onClosed);
}
