/**
 * Committer: the end of a capture file's life in the writer (writer.ts), from its last byte to a
 * finished `.capture` that sync may take.
 *
 *   finalize(s) ─► fdatasync (libuv pool, ≤ MAX_SYNCING at once) + close ─────────────┐
 *   abandon(s), a write error ─► cut back to goodEnd, close ─► salvage(): re-sync ─────┤
 *                                                                                      ▼
 *   commit(), every commitIntervalMs (writer.ts): settled files of new folders ─► ONE fsync per parent for all
 *        of them (libuv pool); the rest, in rotation order ─► ONE seq transaction
 *        (SeqSink.advanceSeqsSync) ─► rename .prog → .capture ─► 'file-finished' event
 *
 * A stream's next seq is persisted before each rename, so a finished file is always covered by
 * the persisted seq, and a `.prog` by start-up recovery (which reads the last seq in it). A crash
 * anywhere before the rename leaves a synced `.prog` that start-up recovery finishes.
 *
 * Names. A seq persisted for a file that a power cut then takes is data lost with nothing to
 * explain it, so a file's name must be durable before its seq. A new stream's folders are made
 * with the file: no seq of that file is persisted before the parents of those folders are
 * fsynced (POSIX makes a new folder durable only so). A new file in an existing folder is not
 * followed by an fsync of the folder: ext4, XFS, btrfs and f2fs persist a new file's name with
 * its own fdatasync, and at ~1000 files/s flat out (256 KiB files) syncing the folder every
 * tick cost ~20 % of 64 KiB-image capture (BENCHMARKS.md).
 */
import path from 'node:path';
import { logger, type StreamGap, type StreamKey } from '@edgecap/core';
import { finishedPathOf, FILE_MODE, type CaptureFileHeader } from '@edgecap/format';
import { Stat } from './layout.js';
import type { WriterEvent } from './types.js';
import { writeError, type WriterFs, type WStream } from './writer-stream.js';

const log = logger('capture.writer');

/** Rotated files whose fdatasync is still running, at most (then the writer waits for the oldest). */
const MAX_SYNCING = 16;

export interface SeqSink {
  advanceSeqSync(key: StreamKey, next: number): void;
  /** Record a gap that no file will carry (drops still pending at stop, losses of a dead writer). */
  recordGap?(g: StreamGap): void;
  /** Several streams in ONE synchronous transaction (optional: else one advanceSeqSync each). */
  advanceSeqsSync?(entries: readonly { key: StreamKey; next: number }[]): void;
}

/** A rotated file: fdatasync'ed and closed, waiting for its seq to be persisted before the rename. */
interface Finished {
  s: WStream;
  path: string;
  header: CaptureFileHeader | undefined;
  readings: number;
  nextSeq: number;
  failed: boolean;
  /** Folders made for it whose parents no periodic sync has fsynced yet: synced before its seq is persisted. */
  dirs: string[];
  /** False while its off-thread fdatasync + close is running. */
  settled: boolean;
  /** Its folders are durable (dirs fsynced, or none to sync). */
  named: boolean;
  done: Promise<void> | undefined;
}

export class Committer {
  private finished: Finished[] = [];
  private syncing = 0;
  /** Files given up after a write error, cut back to their last good frame, waiting to be salvaged. */
  private abandoned: { s: WStream; path: string; goodEnd: number; header: CaptureFileHeader | undefined; readings: number; nextSeq: number; cut: boolean; dirs: string[] }[] = [];
  private salvageFailing = false;
  /** The folder fsyncs of nameSettled() in flight. */
  private naming: Promise<void> | undefined;
  private seqPersistFailing = false;

  constructor(
    private readonly fs: WriterFs,
    private readonly store: SeqSink,
    private readonly emit: (ev: WriterEvent) => void,
  ) {}

  /** Nothing waiting for a sync, a salvage or a rename (the writer may sleep without a tick). */
  get idle(): boolean {
    return this.finished.length === 0 && this.abandoned.length === 0 && this.syncing === 0;
  }

  /** More rotated files syncing than allowed: the writer awaits throttle() before draining on. */
  get overloaded(): boolean {
    return this.syncing > MAX_SYNCING;
  }

  /**
   * Close a file after an error. A file with no good frame is removed; one with good frames is
   * cut back to them and salvaged at the next flush tick (salvage): re-synced, its seq
   * persisted, renamed. Until then (or if salvaging keeps failing) it is a .prog that start-up
   * recovery finishes.
   */
  abandon(s: WStream, removeIfEmpty = false): void {
    const fd = s.fd;
    s.fd = -1;
    const dirs = s.newDirs;
    s.newDirs = [];
    let cut = false;
    if (s.goodEnd > 0) {
      try {
        this.fs.ftruncateSync(fd, s.goodEnd);
        cut = true;
      } catch {
        /* the .prog keeps a torn tail; salvage (or start-up recovery) cuts it */
      }
    }
    try {
      this.fs.closeSync(fd);
    } catch {
      /* already counted */
    }
    if (s.goodEnd === 0) {
      if (removeIfEmpty) {
        try {
          this.fs.unlinkSync(s.path);
        } catch {
          /* recovery at start-up removes a header-less .prog */
        }
      }
      return;
    }
    this.abandoned.push({ s, path: s.path, goodEnd: s.goodEnd, header: s.header, readings: s.fileReadings, nextSeq: s.nextSeq, cut, dirs });
  }

  /**
   * Abandoned files, cut back to their last good frame and synced again, join the files waiting
   * for commit (persist seq, then rename). One that still fails waits for the next tick.
   */
  salvage(): void {
    if (this.abandoned.length === 0) return;
    const left: typeof this.abandoned = [];
    for (const a of this.abandoned) {
      try {
        const fd = this.fs.openSync(a.path, 'r+', FILE_MODE);
        try {
          if (!a.cut) this.fs.ftruncateSync(fd, a.goodEnd);
          a.cut = true;
          this.fs.fdatasyncSync(fd);
        } finally {
          this.fs.closeSync(fd);
        }
        if (this.fs.fsyncDirSync) for (const d of a.dirs) this.fs.fsyncDirSync(d);
        this.finished.push({ s: a.s, path: a.path, header: a.header, readings: a.readings, nextSeq: a.nextSeq, failed: false, dirs: [], settled: true, named: true, done: undefined });
      } catch (e) {
        if (!this.salvageFailing) log.warn({ err: e, path: a.path }, 'could not salvage a file abandoned after a write error; retrying');
        left.push(a);
      }
    }
    this.salvageFailing = left.length > 0;
    this.abandoned = left;
  }

  /**
   * fdatasync and close now; persisting the seq, the rename .prog → .capture and the event follow
   * in the next commit() (a crash in between leaves a synced .prog
   * that start-up recovery finishes, exactly as a crash between close and rename always did).
   */
  finalize(s: WStream): void {
    if (s.fd < 0) return;
    const fd = s.fd;
    s.fd = -1;
    const f: Finished = { s, path: s.path, header: s.header, readings: s.fileReadings, nextSeq: s.nextSeq, failed: false, dirs: s.newDirs, settled: false, named: s.newDirs.length === 0, done: undefined };
    s.newDirs = [];
    this.finished.push(f);
    const close = (): void => {
      try {
        this.fs.closeSync(fd);
      } catch (e) {
        f.failed = true;
        writeError(s, e, this.emit, f.path);
      }
      f.settled = true;
    };
    const async = this.fs.fdatasync;
    if (!async) {
      try {
        this.fs.fdatasyncSync(fd);
      } catch (e) {
        f.failed = true;
        writeError(s, e, this.emit, f.path);
      }
      close();
      return;
    }
    this.syncing++;
    f.done = new Promise<void>((resolve) => {
      async.call(this.fs, fd, (err) => {
        if (err) {
          f.failed = true;
          writeError(s, err, this.emit, f.path);
        }
        close();
        this.syncing--;
        resolve();
      });
    });
  }

  /** Bound the rotated files in flight: wait for the oldest syncs when too many are running. */
  async throttle(): Promise<void> {
    while (this.syncing > MAX_SYNCING) {
      const f = this.finished.find((x) => !x.settled);
      if (!f?.done) return;
      await f.done;
    }
  }

  /** Stop: every rotated file's sync finished, and every new folder durable. */
  async settleAll(): Promise<void> {
    for (const f of this.finished) if (f.done) await f.done;
    this.nameSettled();
    await this.naming;
  }

  /**
   * The settled files whose new folders are not yet durable: ONE fsync per parent for all of them,
   * off the thread; commit() takes them once it is done. A folder that cannot be synced is
   * reported (write-error) and the files go on: their bytes are synced, and holding every
   * later file back would stop capture for a fault it cannot mend.
   */
  private nameSettled(): void {
    if (this.naming) return;
    const batch = this.finished.filter((f) => f.settled && !f.named);
    if (batch.length === 0) return;
    const sync = this.fs.fsyncDir ?? ((d: string, cb: (e: NodeJS.ErrnoException | null) => void) => cb(this.syncDirNow(d)));
    const dirs = [...new Set(batch.flatMap((f) => f.dirs))];
    let over = false; // an fs without the async call answers at once: nothing stays in flight
    const naming = new Promise<void>((resolve) => {
      let left = dirs.length;
      let failed: NodeJS.ErrnoException | null = null;
      for (const d of dirs) {
        sync.call(this.fs, d, (e) => {
          failed ??= e;
          if (--left > 0) return;
          if (failed) writeError(batch[0]!.s, failed, this.emit, path.dirname(batch[0]!.path));
          for (const f of batch) f.named = true;
          over = true;
          this.naming = undefined;
          resolve();
        });
      }
    });
    if (!over) this.naming = naming;
  }

  private syncDirNow(d: string): NodeJS.ErrnoException | null {
    try {
      this.fs.fsyncDirSync?.(d);
      return null;
    } catch (e) {
      return e as NodeJS.ErrnoException;
    }
  }

  /**
   * Persist the seqs of the files finalized (synced and closed) since the last call in ONE sync
   * transaction, then rename and announce each, in rotation order (a file still syncing, and
   * every file after it, waits for the next call).
   */
  commit(): void {
    this.nameSettled();
    let n = 0;
    while (n < this.finished.length && this.finished[n]!.settled && this.finished[n]!.named) n++;
    if (n === 0) return;
    const list = this.finished.slice(0, n);
    this.finished = this.finished.slice(n);
    const seqs = new Map<WStream, number>();
    for (const f of list) seqs.set(f.s, Math.max(seqs.get(f.s) ?? 0, f.nextSeq));
    try {
      const store = this.store;
      if (store.advanceSeqsSync) store.advanceSeqsSync([...seqs].map(([s, next]) => ({ key: s.key, next })));
      else for (const [s, next] of seqs) store.advanceSeqSync(s.key, next);
      for (const [s, next] of seqs) s.stats[Stat.PERSISTED_SEQ] = Math.max(s.stats[Stat.PERSISTED_SEQ]!, next);
    } catch (e) {
      // Renaming now would put seqs on a finished file that a restart could hand out again.
      // Keep them .prog (start-up recovery reads their seqs) and retry at the next tick.
      this.finished = [...list, ...this.finished];
      if (!this.seqPersistFailing) log.error({ err: e }, 'persisting seq before rename failed; files stay in progress until it works');
      this.seqPersistFailing = true;
      return;
    }
    this.seqPersistFailing = false;
    for (const f of list) {
      if (f.failed && f.readings === 0) continue;
      try {
        const fin = finishedPathOf(f.path);
        this.fs.renameSync(f.path, fin);
        this.emit({ type: 'file-finished', path: fin, header: f.header, readings: f.readings });
      } catch (e) {
        writeError(f.s, e, this.emit, f.path);
      }
    }
  }
}
