/**
 * Logging from worker threads without a logger in them: a thread's log lines travel to the
 * main thread as messages on its parentPort and are written there by the process's logger.
 * Collector and writer threads thereby never load pino (its streams and serializers cost each
 * isolate megabytes and start-up time).
 *
 *   thread: PortLogger.warn(obj, msg) ─► parentPort { [LOG_KEY]: LogLine } ─► ManagedWorker ─► logger
 *
 * Lines below the level the main thread passed in workerData are dropped in the thread.
 */
import type { Logger } from '../log.js';

export const LOG_KEY = '__edgecapLog';
/** Marks an error flattened for the trip, so the main thread logs it as an error again. */
const ERR_MARK = '__edgecapErr';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
export type LogLevel = Exclude<keyof typeof LEVELS, 'silent'>;

export interface LogLine {
  level: LogLevel;
  bindings: Record<string, unknown>;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

interface Port {
  postMessage(m: unknown): void;
}

/** Errors keep what a reader needs (structured clone drops `code` and `details`). */
function plain(v: unknown): unknown {
  if (!(v instanceof Error)) return v;
  const e = v as Error & { code?: unknown; details?: unknown; cause?: unknown };
  return { [ERR_MARK]: true, type: e.name, message: e.message, stack: e.stack, ...(e.code !== undefined ? { code: e.code } : {}), ...(e.details !== undefined ? { details: e.details } : {}), ...(e.cause !== undefined ? { cause: plain(e.cause) } : {}) };
}

export class PortLogger {
  private readonly threshold: number;

  constructor(
    private readonly port: Port,
    readonly level: string,
    private readonly bindings: Record<string, unknown> = {},
  ) {
    this.threshold = LEVELS[level as keyof typeof LEVELS] ?? LEVELS.info;
  }

  child(b: Record<string, unknown>): PortLogger {
    return new PortLogger(this.port, this.level, { ...this.bindings, ...b });
  }

  isLevelEnabled(level: string): boolean {
    return (LEVELS[level as keyof typeof LEVELS] ?? Infinity) >= this.threshold;
  }

  private write(level: LogLevel, a: unknown, b: unknown): void {
    if (LEVELS[level] < this.threshold) return;
    let obj: Record<string, unknown> = {};
    let msg: string | undefined;
    if (typeof a === 'string') msg = a;
    else {
      if (a instanceof Error) obj = { err: plain(a) };
      else if (a !== null && typeof a === 'object') for (const [k, v] of Object.entries(a)) obj[k] = plain(v);
      if (typeof b === 'string') msg = b;
    }
    const line: LogLine = { level, bindings: this.bindings, obj, msg };
    try {
      this.port.postMessage({ [LOG_KEY]: line });
    } catch {
      // something in obj cannot be cloned (a function, a handle): send its JSON-safe shape
      this.port.postMessage({ [LOG_KEY]: { ...line, obj: JSON.parse(JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) ?? '{}') as Record<string, unknown> } });
    }
  }

  trace(a: unknown, b?: unknown): void {
    this.write('trace', a, b);
  }
  debug(a: unknown, b?: unknown): void {
    this.write('debug', a, b);
  }
  info(a: unknown, b?: unknown): void {
    this.write('info', a, b);
  }
  warn(a: unknown, b?: unknown): void {
    this.write('warn', a, b);
  }
  error(a: unknown, b?: unknown): void {
    this.write('error', a, b);
  }
  fatal(a: unknown, b?: unknown): void {
    this.write('fatal', a, b);
  }

  /** Only the methods our threads call are implemented; the cast is checked by use. */
  asLogger(): Logger {
    return this as unknown as Logger;
  }
}

/** The log line a thread sent, if this message is one. */
export function logLineOf(m: unknown): LogLine | undefined {
  if (m === null || typeof m !== 'object' || !(LOG_KEY in m)) return undefined;
  return (m as Record<string, LogLine>)[LOG_KEY];
}

/** An Error again (named as in the thread: the logger's serializer reports the class name). */
function revive(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || !(ERR_MARK in v)) return v;
  const { type, message, stack, cause, [ERR_MARK]: _mark, ...rest } = v as Record<string, unknown>;
  const name = typeof type === 'string' && type ? type : 'Error';
  const Named = { [name]: class extends Error {} }[name]!;
  const e = Object.assign(new Named(String(message ?? '')), rest, cause !== undefined ? { cause: revive(cause) } : {});
  e.name = name;
  if (typeof stack === 'string') e.stack = stack;
  return e;
}

/** Write a thread's line with the process's logger (main thread). */
export function relayLogLine(log: Logger, worker: string, l: LogLine): void {
  const fn = log[l.level];
  if (typeof fn !== 'function') return;
  const obj: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(l.obj)) obj[k] = revive(v);
  fn.call(log.child({ ...l.bindings, worker }), obj, l.msg);
}
