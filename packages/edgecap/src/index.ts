/**
 * `edgecap`: the one package a user installs. The library API of the internal packages, bundled
 * into this package's `dist/` by scripts/build.js (README.md says why bundled).
 */
export {
  DataManager,
  configSchema,
  parseConfig,
  loadConfigFile,
  readConfigFile,
  createMetricsRegistry,
  listFailed,
  type DataManagerStats,
  type DataManagerEvents,
  type CpuReport,
  type EdgecapConfig,
  type EdgecapConfigInput,
  type ResourceConfig,
} from '@edgecap/datamanager';
// The ingest server: its settings and dev certificates load with the library; the server itself
// (gRPC, storage) only at the first call that needs it (./ingest.ts).
export { parseListen, defaultLimits, INGEST_VERSION, DEFAULT_MAX_FILE_BYTES, type IngestLimits } from '@edgecap/ingest/settings';
export { makeDevCert, type DevCert } from '@edgecap/ingest/devcert';
export { startIngestServer, exportReadings, listReceived, readReceived, gapReport } from './ingest.js';
export type { IngestServer, IngestServerOptions, ExportedReading, ReceivedEntry, GapReport, GapReportOptions } from '@edgecap/ingest';
export {
  ErrorCodes,
  EdgecapError,
  ConfigError,
  CorruptFrameError,
  DEFAULT_CAPTURE_DIR,
  IN_PROGRESS_EXT,
  FINISHED_EXT,
  type ErrorCode,
  type StreamKey,
  type DataType,
} from '@edgecap/core';
// Capture files: readers, and the frame-level writer (encodeFileStart + FrameEncoder).
export {
  readCaptureFile,
  readCaptureBytes,
  readRecords,
  scanFrames,
  RecordStream,
  FrameStream,
  listFiles,
  walkFiles,
  isFinishedCapture,
  isInProgressCapture,
  recoverCaptureDir,
  encodeFileStart,
  checkHeader,
  newFileId,
  FrameEncoder,
  FrameType,
  FORMAT_VERSION,
  type CaptureFileHeader,
  type HeaderInit,
  type CaptureFileSummary,
  type Reading,
  type Gap,
  type Problem,
  type RecordEvent,
  type ScanEvent,
  type RecoveryResult,
  type GapReason,
} from '@edgecap/format';
export type { ResourceCtx, LoadedResource } from '@edgecap/capture';
export type { SyncStats, SyncErrorEvent, FileSyncedEvent, FileFailedEvent } from '@edgecap/sync';
