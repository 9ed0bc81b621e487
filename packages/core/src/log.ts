import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent } from 'pino';

// pino loads with the first logger made: a thread that installs its own root logger first
// (every thread ManagedWorker starts logs through its parent: threads/boot.ts) never loads it.
const require = createRequire(import.meta.url);

export type { Logger };

/** The levels a config's `log_level`, `--log-level` and EDGECAP_LOG_LEVEL accept. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];

/**
 * One root logger per process; subsystems take children named after themselves
 * (`capture.writer`, `sync`, ...). Level from EDGECAP_LOG_LEVEL unless set by the app.
 * Worker threads build their own root logger: the level the main thread settled on reaches
 * them as worker environment data (copied into every worker started after it is set).
 */
let root: Logger | undefined;
/** The app (or EDGECAP_LOG_LEVEL) chose the level: a config's log_level does not override it. */
let levelChosen = false;
/** Subsystem loggers: pino children copy the level when made, so a level change must reach each. */
const children = new Set<WeakRef<Logger>>();
let pruneAt = 64;
const LEVEL_KEY = 'edgecap.logLevel';

function isLevel(v: unknown): v is LevelWithSilent {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}

/**
 * The app's own logger. With `levelChosen` (the default) its level is the app's decision and a
 * DataManager config's `log_level` leaves it alone; without, the config's level applies.
 */
export function setRootLogger(logger: Logger, opts: { levelChosen?: boolean } = {}): void {
  root = logger;
  levelChosen = opts.levelChosen ?? true;
  if (isLevel(logger.level)) setEnvironmentData(LEVEL_KEY, logger.level);
}

export function rootLogger(): Logger {
  if (!root) {
    const inherited = getEnvironmentData(LEVEL_KEY);
    const env = process.env.EDGECAP_LOG_LEVEL;
    const level = isLevel(inherited) ? inherited : isLevel(env) ? env : 'info';
    levelChosen = isLevel(env);
    // stderr: stdout belongs to commands that print data (export, inspect).
    const { pino } = require('pino') as typeof import('pino');
    root = pino({ level, base: undefined }, pino.destination({ fd: 2, sync: true }));
  }
  return root;
}

/** Set the level of the root logger and of every subsystem logger, here and in workers started later. */
export function setLogLevel(level: LevelWithSilent): void {
  rootLogger().level = level;
  for (const r of children) {
    const c = r.deref();
    if (c) c.level = level;
    else children.delete(r);
  }
  setEnvironmentData(LEVEL_KEY, level);
}

/**
 * A config's `log_level`: applied unless the app (setRootLogger) or EDGECAP_LOG_LEVEL chose the
 * level. Says whether it was applied.
 */
export function applyConfigLogLevel(level: LevelWithSilent): boolean {
  rootLogger();
  if (levelChosen) return false;
  setLogLevel(level);
  return true;
}

export function logger(subsystem: string): Logger {
  const c = rootLogger().child({ sub: subsystem });
  children.add(new WeakRef(c));
  // Loggers made per instance (janitor, DataManager) come and go: drop the dead refs now and then.
  if (children.size >= pruneAt) {
    for (const r of children) if (!r.deref()) children.delete(r);
    pruneAt = Math.max(64, children.size * 2);
  }
  return c;
}
