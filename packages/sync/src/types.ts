/**
 * What the sync engine's embedder sees: SyncEngine's options, a round's result, its stats and its
 * events. A module of their own so the engine's parts (link-health.ts, prepare.ts, dispatch.ts,
 * settle.ts) use them without importing the engine; engine.ts re-exports them.
 */
import type { EventEmitter } from 'node:events';
import type { Clock } from '@edgecap/core';
import type { CaptureFirstStats, CaptureLateness } from './capture-first.js';
import type { RateLimitShare } from './link.js';
import type { IngestTarget } from './target.js';

export interface SyncOptions {
  captureDir: string;
  /** StateStore dir; the engine opens its own StateStore there. */
  stateDir: string;
  additionalSyncPaths: string[];
  /** Files under additionalSyncPaths modified less than this long ago are left alone (default 10000). */
  fileLastModifiedMs: number;
  intervalMs: number;
  /** maximum_num_sync_threads: size of the upload pool. */
  threads: number;
  partId: string;
  tags: string[];
  ingest: IngestTarget;
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  chunkBytes?: number;
  /** Default true. When false, synced files are kept (checkpoint committed keeps them from re-upload). */
  deleteAfterSync?: boolean;
  /**
   * Run id shared with the janitor of the same process. Claims are leases naming (run id, pid,
   * process start time): another live process's are respected, a dead one's and an earlier
   * run's of this process are taken over. Default random.
   */
  runId?: string;
  /** Injectable clock (backoff, file ages, retry times). */
  clock?: Clock;
  /** Injectable jitter source. */
  random?: () => number;
  /**
   * Attempts at a file that cannot be read locally (EACCES, EIO, ...) before it goes to failed/
   * (default 10). Server answers never count here: only verdicts (rejections) reach failed/.
   */
  maxFileAttempts?: number;
  /** Health probe deadline, ms (default 5000). */
  probeTimeoutMs?: number;
  /**
   * sync_probe_interval_ms: while the ingest is unreachable, one Health probe this often (default
   * 5000), independent of the connectivity backoff; an answer ends the backoff and syncs at once.
   */
  probeIntervalMs?: number;
  /** Absolute upload call deadline, ms (default none: the stall watchdog decides; viam: 120 s + 1 s per 256 KiB). */
  uploadDeadlineMs?: number;
  /** sync_stall_timeout_ms: an upload with no acknowledged progress for this long is cut and retried (default 60000). */
  stallTimeoutMs?: number;
  /** sync_max_bytes_per_second: one cap over all uploads of this engine, all threads (unset: none). */
  maxBytesPerSecond?: number;
  /**
   * A pace made by the caller (createRateLimit) and shared with another engine: memory mode's
   * in-memory files and its additional_sync_paths go through one cap. Replaces maxBytesPerSecond.
   */
  rateLimit?: RateLimitShare;
  /**
   * Capture first (sync_capture_first): capture's cumulative lateness, read once a second while a
   * round runs. Given, sync's pace follows it: cut back while capture is late beyond its own
   * baseline, grown back while it is on time (capture-first.ts). Not given: sync runs flat out
   * (within maxBytesPerSecond).
   */
  captureLateness?: () => CaptureLateness;
  /** How long an upload claim lasts unless renewed, ms (default the store's DEFAULT_LEASE_MS); renewed every third of it. */
  leaseMs?: number;
  /**
   * Capture first: the sync pool's threads run this much nicer than the process (default
   * SYNC_NICE_INCREMENT; 0: at the process's priority). Linux only (a thread's own nice value);
   * capture's threads keep theirs.
   */
  niceIncrement?: number;
}

export interface SyncResult {
  uploaded: number;
  alreadyHad: number;
  bytes: number;
  failed: number;
  deferred: number;
  errors: string[];
}

export interface SyncStats {
  pendingFiles: number;
  pendingBytes: number;
  uploadedFiles: number;
  uploadedBytes: number;
  alreadyHave: number;
  /** Files moved to failed/ by this engine (a counter). */
  failedFiles: number;
  /** Files in <stateDir>/failed/ now (what `--retry-failed` would move back). */
  failedOnDisk: number;
  /** The last failure was the link (unreachable): Health probes run every probeIntervalMs. */
  offline: boolean;
  lastError?: string;
  nextRetryAt?: number;
  running: boolean;
  /** Capture first's pace, when captureLateness is given. */
  captureFirst?: CaptureFirstStats;
}


export interface FileSyncedEvent {
  path: string;
  fileId: string;
  status: 'committed' | 'already_have';
  bytes: number;
}
export interface SyncErrorEvent {
  message: string;
  code: string;
  nextRetryAt: number;
}
export interface FileFailedEvent {
  path: string;
  reason: string;
  /** Where the file is now (under <stateDir>/failed/). */
  dest: string;
}

/** Where the engine's parts report to the embedder: the engine's events, and stats().lastError. */
export interface Notices {
  readonly events: EventEmitter;
  lastError: string | undefined;
}
