import os from 'node:os';
import path from 'node:path';

/** File name endings: only FINISHED files are ever synced or deleted by the janitor. */
export const IN_PROGRESS_EXT = '.prog';
export const FINISHED_EXT = '.capture';
/** Folder (inside the capture dir) for edgecap's own state; scanners skip dot-folders. */
export const STATE_DIR_NAME = '.edgecap';
/** Folder (inside the state dir) where files the server rejected as invalid are moved. */
export const FAILED_DIR_NAME = 'failed';

export const DEFAULT_CAPTURE_DIR = path.join(os.homedir(), '.edgecap', 'capture');

export const DEFAULTS = {
  maximum_capture_file_size_bytes: 256 * 1024,
  /** Age after which an open file is rotated even if small, so slow resources still finish files. */
  maximum_capture_file_age_ms: 60_000,
  flush_interval_ms: 100,
  fsync_interval_ms: 1000,
  capture_queue_size: 1024 * 1024,
  sync_interval_mins: 0.1,
  file_last_modified_millis: 10_000,
  delete_every_nth_when_disk_full: 5,
  disk_usage_deletion_threshold: 0.9,
  capture_dir_deletion_threshold: 0.5,
  janitor_interval_ms: 30_000,
} as const;

export function defaultSyncThreads(): number {
  return Math.max(1, Math.floor(os.availableParallelism() / 2));
}

/**
 * Models a config can name without a module (capture's BUILTIN_MODELS implements exactly these;
 * a capture test holds the two together). Here so validating a config does not load capture.
 */
export const BUILTIN_MODEL_NAMES = ['sim:sensor', 'sim:movement_sensor', 'sim:camera', 'http'] as const;
