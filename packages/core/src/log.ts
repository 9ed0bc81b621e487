import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * One root logger per process; subsystems take children named after themselves
 * (`capture.writer`, `sync`, ...). Level from EDGECAP_LOG_LEVEL unless set by the app.
 */
let root: Logger | undefined;

export function setRootLogger(logger: Logger): void {
  root = logger;
}

export function rootLogger(): Logger {
  if (!root) {
    const level = (process.env.EDGECAP_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
    // stderr: stdout belongs to commands that print data (export, inspect).
    root = pino({ level, base: undefined }, pino.destination({ fd: 2, sync: true }));
  }
  return root;
}

export function logger(subsystem: string): Logger {
  return rootLogger().child({ sub: subsystem });
}
