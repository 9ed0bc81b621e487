export {
  startIngestServer,
  isLoopback,
  MAX_MESSAGE_BYTES,
  FLOW_CONTROL_WINDOW,
  type IngestServer,
  type IngestServerOptions,
} from './server.js';
export { RequestRejected } from './errors.js';
export {
  FileStorage,
  type IngestStorage,
  type StagedUpload,
  type FileRecord,
  type NewFileRecord,
  type CaptureInfo,
  type ReportedGap,
  type CommitResult,
} from './storage.js';
export {
  exportReadings,
  listReceived,
  readReceived,
  gapReport,
  gapReportStreams,
  removeReportedGaps,
  summarizeBinary,
  DEFAULT_REPORT_ENTRIES,
  type GapReportOptions,
  type ExportedReading,
  type BinarySummary,
  type ReceivedEntry,
  type ReceivedCaptureFile,
  type ReceivedFile,
  type GapReport,
  type StreamCompleteness,
  type GapEntry,
  type SeqRange,
  type ExportTarget,
} from './report.js';
export { stringify, stringifyChunks, toExportable } from './json.js';
export { PgStorage, PgStorageError, MIGRATIONS, type PgStorageOptions, type Migration } from './pg/index.js';
export { makeDevCert, type DevCert } from './devcert.js';
export { findUnknownField } from './wire.js';
export { type DeviceKey, type NewDeviceKey, type Principal, type KeyRegistry } from './keys.js';
export { defaultLimits, parseLimitFlags, parseListen, INGEST_VERSION, DEFAULT_MAX_FILE_BYTES, type IngestLimits } from './settings.js';
export { openKeyAdmin, type KeyAdmin } from './registry.js';
export { startIngestUi, type IngestUi, type IngestUiOptions } from './ui/server.js';
export { DEFAULT_UI_LIMITS, type UiLimits } from './ui/query.js';
