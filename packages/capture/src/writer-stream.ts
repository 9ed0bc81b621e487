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
import { fsyncDir, fsyncDirSync, logger, nowMicros, streamKeyString, type StreamKey } from '@edgecap/core';
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
  /**
   * Optional: the capture dir's filesystem (Headroom), off the writer thread (libuv pool: a
   * statfs on a stalled network filesystem must not stop the draining). Without it no headroom
   * is kept (memory mode).
   */
  statfs?(p: string, cb: (err: NodeJS.ErrnoException | null, s: { bsize: number; blocks: number; bavail: number }) => void): void;
  /**
   * Optional: fsync a folder, on the thread (a file's first periodic sync, salvage) and off it
   * (commit). A new stream's folders are durable only then (POSIX). Without them no folder is
   * synced (memory mode has none).
   */
  fsyncDirSync?(p: string): void;
  fsyncDir?(p: string, cb: (err: NodeJS.ErrnoException | null) => void): void;
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
  statfs: (p, cb) => fs.statfs(p, cb),
  fsyncDirSync,
  fsyncDir,
};

/** Free space is asked for again after this long (or sooner, at most this often, when it runs short). */
const HEADROOM_CHECK_MS = 100;
const HEADROOM_RECHECK_MS = 10;

/**
 * What capture leaves free on its filesystem: 2 % of it, at least 256 KiB, at most 16 MiB, and
 * never more than half the room above the janitor's threshold (capture must still fill the disk
 * past the threshold, or the janitor would never delete and capture never resume).
 */
export function ledgerReserve(fsBytes: number, diskUsageThreshold = 0.9): number {
  const r = Math.min(16 * 1024 * 1024, Math.max(256 * 1024, Math.floor(fsBytes * 0.02)));
  return Math.max(0, Math.min(r, Math.floor((fsBytes * (1 - diskUsageThreshold)) / 2)));
}

/**
 * The last bytes of the capture dir's filesystem are left to the ledger (LMDB, in the capture
 * dir unless state_dir says otherwise). lmdb-js 3.5 corrupted its native heap after commits
 * that failed with ENOSPC: in a torture run (shared-dir) three janitor commits failed, then
 * glibc aborted the edge ("corrupted size vs. prev_size"). Capture filling the disk to the last
 * byte was what made them fail, and the janitor needs its ledger to free space. So the writer
 * treats free space under ledgerReserve() like ENOSPC: the batch is dropped and a write_error
 * gap explains it. Free space (as the janitor counts it: bavail) comes from an async statfs at
 * most every HEADROOM_CHECK_MS, one at a time; the bytes written since it was asked are counted
 * against it. Until the first answer nothing is refused.
 */
export class Headroom {
  private free = Infinity;
  private reserve = 0;
  /** Room between the janitor's threshold and the reserve (a batch bigger than this still goes). */
  private slack = Infinity;
  private askedAt = -Infinity;
  private asking = false;
  /** Bytes taken since the statfs in flight was asked. */
  private sinceAsked = 0;

  constructor(
    private readonly dir: string,
    private readonly statfs: WriterFs['statfs'],
    private readonly diskUsageThreshold: number,
  ) {}

  /** Throws an ENOSPC error when writing `bytes` would eat into the reserve. */
  take(bytes: number): void {
    if (!this.statfs) return;
    const now = performance.now();
    const short = this.free - bytes < this.reserve;
    if (!this.asking && (now - this.askedAt >= HEADROOM_CHECK_MS || (short && now - this.askedAt >= HEADROOM_RECHECK_MS))) this.ask(now);
    // A batch larger than the room above the janitor's threshold goes once the disk is under
    // it: refused there, it would be refused forever (the janitor does nothing below its threshold).
    const need = Math.min(bytes, this.slack);
    if (this.reserve > 0 && this.free - need < this.reserve) {
      throw Object.assign(new Error(`ENOSPC: capture leaves the last ${this.reserve} bytes of its filesystem free for the ledger (${Math.max(0, this.free)} free)`), { code: 'ENOSPC' });
    }
    this.free -= bytes;
    this.sinceAsked += bytes;
  }

  private ask(now: number): void {
    this.asking = true;
    this.askedAt = now;
    this.sinceAsked = 0;
    this.statfs!(this.dir, (err, s) => {
      this.asking = false;
      if (err) {
        this.free = Infinity; // cannot tell: the write itself will say
        return;
      }
      const total = s.blocks * s.bsize;
      this.reserve = ledgerReserve(total, this.diskUsageThreshold);
      this.slack = Math.max(0, Math.floor(total * (1 - this.diskUsageThreshold)) - this.reserve);
      this.free = s.bavail * s.bsize - this.sinceAsked;
    });
  }
}

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
  /**
   * The parents of the folders made for this file (a new stream's), not yet fsynced: the
   * file's first periodic fdatasync, or else its commit, syncs them (committer.ts says why).
   */
  newDirs: string[] = [];
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
