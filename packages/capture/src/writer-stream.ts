/**
 * What the writer (writer.ts) keeps per stream, and the slice of `fs` it writes through.
 *
 *   frames ──append──► batch (grows; frames copied once) ──flush (writer.ts)──► .prog @ goodEnd
 *                                        finalize / abandon (committer.ts) ──► the next file
 *
 * A stream has at most one open `.prog` file; `goodEnd` is the offset below which every byte was
 * written whole, so an error can always cut the file back to a frame boundary.
 */
import fs from 'node:fs';
import { logger, nowMicros, streamKeyString, type StreamKey } from '@edgecap/core';
import type { CaptureFileHeader } from '@edgecap/format';
import { Stat } from './layout.js';
import type { StreamInfo, WriterEvent } from './types.js';

const log = logger('capture.writer');

/** The slice of `fs` the writer uses; tests pass one that fails (ENOSPC, short writes). */
export interface WriterFs {
  openSync(p: string, flags: string, mode: number): number;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  fdatasyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  ftruncateSync(fd: number, len: number): void;
  mkdirSync(p: string, o: { recursive: true; mode: number }): unknown;
  unlinkSync(p: string): void;
  /**
   * Optional: fdatasync off the writer thread (libuv pool), used for rotated files so the
   * writer keeps draining while the disk syncs. Without it, rotation syncs inline.
   */
  fdatasync?(fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void;
}

export const realFs: WriterFs = {
  openSync: (p, f, m) => fs.openSync(p, f, m),
  writeSync: (fd, b, o, l, p) => fs.writeSync(fd, b, o, l, p),
  fdatasyncSync: (fd) => fs.fdatasyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
  renameSync: (a, b) => fs.renameSync(a, b),
  ftruncateSync: (fd, l) => fs.ftruncateSync(fd, l),
  mkdirSync: (p, o) => fs.mkdirSync(p, o),
  unlinkSync: (p) => fs.unlinkSync(p),
  fdatasync: (fd, cb) => fs.fdatasync(fd, cb),
};

/** Bytes a file header is assumed to take before the file is opened (size-limit checks). */
export const HEADER_ESTIMATE = 256;
/** A stream's batch is written at once when it reaches this, without waiting for the tick. */
export const BATCH_FLUSH_BYTES = 1 << 20;

/** One stream's batch and open file. */
export class WStream {
  batch = new Uint8Array(64 * 1024);
  batchLen = 0;
  batchReadings = 0;
  batchFirstSeq = -1;
  batchStartUs = 0;
  batchBinary = false;
  nextSeq = 0;
  fd = -1;
  path = '';
  header: CaptureFileHeader | undefined;
  /** Bytes known good in the open file (everything before this offset was written fully). */
  goodEnd = 0;
  fileReadings = 0;
  openedAt = 0;
  unsynced = false;
  gapFrom = -1;
  gapTo = -1;
  lastErrCode = '';
  /** Restarted writer: seqs below this are in a file or explained; -1 once the first frame came. */
  resumeFrom = -1;
  readonly stats: Float64Array;
  constructor(readonly info: StreamInfo) {
    this.stats = new Float64Array(info.statsSab);
  }
  get key(): StreamKey {
    return this.info.key;
  }
  append(frame: Uint8Array, firstSeq: number, count: number, reading: boolean): void {
    if (this.batchLen + frame.length > this.batch.length) {
      const n = new Uint8Array(Math.max(this.batch.length * 2, this.batchLen + frame.length));
      n.set(this.batch.subarray(0, this.batchLen));
      this.batch = n;
    }
    this.batch.set(frame, this.batchLen);
    this.batchLen += frame.length;
    if (this.batchFirstSeq < 0) {
      this.batchFirstSeq = firstSeq;
      this.batchStartUs = nowMicros();
    }
    if (reading) this.batchReadings++;
    if (firstSeq + count > this.nextSeq) this.nextSeq = firstSeq + count;
  }
  resetBatch(): void {
    this.batchLen = 0;
    this.batchReadings = 0;
    this.batchFirstSeq = -1;
    if (this.batch.length > 4 * BATCH_FLUSH_BYTES) this.batch = new Uint8Array(64 * 1024);
  }
}

/** Count a write error on the stream; log and emit it once per error code in a row. */
export function writeError(s: WStream, e: unknown, emit: (ev: WriterEvent) => void, p = s.path): void {
  s.stats[Stat.WRITE_ERRORS] = s.stats[Stat.WRITE_ERRORS]! + 1;
  const code = (e as NodeJS.ErrnoException).code ?? 'EDGECAP_ERR_WRITE_FAILED';
  if (code !== s.lastErrCode) {
    s.lastErrCode = code;
    log.warn({ err: e, stream: streamKeyString(s.key), path: p }, 'capture write failed');
    emit({ type: 'write-error', code, message: (e as Error).message, path: p || undefined });
  }
}
