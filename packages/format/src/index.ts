export { crc32c } from './crc32c.js';
export {
  FILE_MAGIC,
  FORMAT_VERSION,
  FRAME_MAGIC,
  FRAME_HEADER_BYTES,
  FrameOff,
  FrameType,
  MAX_FRAME_PAYLOAD,
  type FrameTypeValue,
  type GapReason,
  type BoundingBoxAnnotation,
  type ClassificationAnnotation,
  type ReadingAnnotations,
} from './layout.js';
export { FrameEncoder, encodeFrame, sealFrame, readU32, writeU32 } from './frame.js';
export { encodeFileStart, checkHeader, newFileId, type CaptureFileHeader, type HeaderInit } from './header.js';
export {
  scanFrames,
  readRecords,
  peekSeq,
  readCaptureBytes,
  lastGoodEnd,
  type ScanEvent,
  type RecordEvent,
  type Reading,
  type Gap,
  type Problem,
  type CaptureFileSummary,
} from './reader.js';
export {
  DIR_MODE,
  FILE_MODE,
  checkPathSegment,
  streamDir,
  timeStamp,
  inProgressPath,
  finishedPathOf,
  isFinishedCapture,
  isInProgressCapture,
  readCaptureFile,
  listFiles,
  walkFiles,
  type WalkOptions,
  recoverInProgress,
  recoverCaptureDir,
  type RecoveryResult,
} from './files.js';
export { RecordStream } from './reader.js';
export { FrameStream } from './scan.js';
