export {
  ErrorCodes,
  EdgecapError,
  ConfigError,
  CorruptFrameError,
  toWire,
  fromWire,
  isErrno,
  type ErrorCode,
  type WireError,
} from './errors.js';
export { Backoff, systemClock, type Clock, type BackoffOptions } from './backoff.js';
export { logger, rootLogger, setRootLogger, setLogLevel, applyConfigLogLevel, LOG_LEVELS, type Logger } from './log.js';
export {
  IN_PROGRESS_EXT,
  FINISHED_EXT,
  STATE_DIR_NAME,
  FAILED_DIR_NAME,
  DEFAULT_CAPTURE_DIR,
  DEFAULTS,
  defaultSyncThreads,
  BUILTIN_MODEL_NAMES,
} from './constants.js';
export { hostOf, isLoopback } from './net.js';
export { failedEntries, listFailed } from './failed.js';
export { tokenMatches } from './token.js';
export { ensureRoomForNewLmdb } from './space-probe.js';
export { parentsChangedByMkdir, fsyncDir, fsyncDirSync } from './dirs.js';
export { readTlsFiles, type TlsFiles } from './tls.js';
export { nowMicros, type StreamKey, streamKeyString, type DataType, type StreamGap } from './types.js';
export { Ctl } from './threads/ctl.js';
