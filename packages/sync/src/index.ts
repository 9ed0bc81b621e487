export { SyncEngine, type SyncOptions, type SyncResult, type SyncStats, type FileSyncedEvent, type SyncErrorEvent, type FileFailedEvent, type RetryFailedResult, DEFAULT_PROBE_INTERVAL_MS, listFailed } from './engine.js';
export { type IngestTarget, checkTarget, isLoopback, DEFAULT_CHUNK_BYTES, FLOW_CONTROL_WINDOW, MAX_MESSAGE_BYTES } from './target.js';
export { SyncError, SyncConfigError, classifyStatus, statusName, type FailureKind } from './errors.js';
export { uploadFile, type UploadTask, type UploadOutcome } from './upload.js';
export { DEFAULT_STALL_TIMEOUT_MS, createRateLimit, setRate, rateOf, bytesTaken, reserveBytes, type RateLimitShare } from './link.js';
export { CaptureFirst, FLOOR_BYTES_PER_SECOND, type CaptureLateness, type CaptureFirstStats } from './capture-first.js';
export { scanCaptureDir, type Candidate } from './scan.js';
export { readCaptureHeader } from './header.js';
export { MemorySyncEngine, MemorySyncError, type MemorySyncOptions, type MemoryFileSource, type MemoryFile, type MemoryFileGap } from './memory-sync.js';
