/**
 * Writer: ONE thread drains every ring into per-stream batch buffers and group-commits them.
 *
 *   rings ──drain──► stream batch (frames, copied once) ──flush tick──► write(fd, batch @ goodEnd)
 *     doorbell.wait (waitAsync, timeout)        │ every flush_interval_ms/2: one write per stream
 *     (deep: nothing pending → no timer;        │   (none while nothing is buffered or unsynced)
 *      every push rings the bell)               │
 *                                               │ every fsync_interval_ms: fdatasync
 *                                               │ size/age limit: fdatasync, rename .prog→.capture
 *                                               └ error: truncate back to goodEnd (or drop the file),
 *                                                 count, GAP 'write_error' once writing works again
 *
 * At rotation the file's fdatasync runs off the writer thread (libuv pool, at most MAX_SYNCING
 * at once) while the writer keeps draining into the next file; its close, seq and rename wait
 * for it. A stream's next seq is persisted (StateStore.advanceSeqsSync) before each rename, so a finished
 * file is always covered by the persisted seq, and a .prog by start-up recovery (which reads
 * the last seq in it): no per-flush state write is needed on the hot path. Files rotated
 * (fdatasync'ed and closed at once) since the last flush tick share ONE LMDB transaction at
 * that tick, then are renamed in order (commitFinished): a finished file is renamed at most
 * flush_interval_ms/2 after its rotation.
 *
 * A file given up after a write error (abandonFile) is cut back to its last good frame, closed,
 * and salvaged at the next flush tick (re-synced, then the same persist-then-rename): it is
 * syncable without waiting for a restart.
 *
 * Restarted writer (the previous thread died): the engine recovered the dead writer's .prog
 * files and hands each stream's `resumeFrom` (everything below is in a file or explained). The
 * rings still hold what the dead thread had not consumed: frames below resumeFrom are skipped
 * (on disk already: consumed but not yet released when the thread died); a first frame above it
 * means the dead thread lost [resumeFrom, first) in memory: recorded as a 'writer_crash' gap.
 * OVERSIZE markers whose bytes went to the dead thread (token <= lostTokensUpTo) are gaps too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { logger, nowMicros, streamKeyString, type StreamGap, type StreamKey } from '@edgecap/core';
import { DIR_MODE, encodeFileStart, FILE_MODE, finishedPathOf, FrameEncoder, inProgressPath, newFileId, type CaptureFileHeader } from '@edgecap/format';
import { Doorbell, RingConsumer } from '@edgecap/ring';
import { REC_PREFIX_BYTES, RecFlag, RecOff, RecType, Stat } from './layout.js';
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

/** How long retireRing(graceful) waits for a closed ring to drain on its own. */
const RETIRE_WAIT_MS = 2_000;
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
  /** False while its off-thread fdatasync + close is running. */
  settled: boolean;
  done: Promise<void> | undefined;
}

export interface WriterOptions {
  captureDir: string;
  partId: string;
  tags: string[];
  maxFileBytes: number;
  maxFileAgeMs: number;
  flushIntervalMs: number;
  fsyncIntervalMs: number;
  bellSab: SharedArrayBuffer;
}

export interface WriterDeps {
  fs?: WriterFs;
  store: SeqSink;
  emit: (ev: WriterEvent) => void;
}

const HEADER_ESTIMATE = 256;
const BATCH_FLUSH_BYTES = 1 << 20;

class WStream {
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

interface WRing {
  id: number;
  /** OVERSIZE tokens up to this were sent to a dead writer thread: their bytes never come. */
  lostTokensUpTo: number;
  /** Waiting for the bytes of an OVERSIZE marker (so not "work" until they arrive). */
  blocked: boolean;
  consumer: RingConsumer;
  streams: WStream[];
}

export class Writer {
  private readonly fs: WriterFs;
  private readonly streams = new Map<string, WStream>();
  private rings: WRing[] = [];
  private readonly oversize = new Map<string, Uint8Array>();
  private readonly bell: Doorbell;
  private readonly enc = new FrameEncoder();
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly tickMs: number;
  private finished: Finished[] = [];
  private syncing = 0;
  /** Files given up after a write error, cut back to their last good frame, waiting to be salvaged. */
  private abandoned: { s: WStream; path: string; goodEnd: number; header: CaptureFileHeader | undefined; readings: number; nextSeq: number; cut: boolean }[] = [];
  /** How far each stream of a dropped ring got, until the engine asks (retireRing). */
  private readonly retired = new Map<number, { key: StreamKey; nextSeq: number }[]>();

  constructor(
    private readonly o: WriterOptions,
    private readonly deps: WriterDeps,
  ) {
    this.fs = deps.fs ?? realFs;
    this.bell = new Doorbell(o.bellSab);
    // flush ticks at half the interval: a reading waits at most flush_interval_ms in memory
    this.tickMs = Math.max(1, o.flushIntervalMs / 2);
  }

  /** `lostTokensUpTo`: OVERSIZE tokens of this ring whose bytes went to a dead writer thread. */
  addRing(id: number, sab: SharedArrayBuffer, infos: StreamInfo[], lostTokensUpTo = -1): void {
    const streams: WStream[] = [];
    for (const info of infos) {
      const k = streamKeyString(info.key);
      let s = this.streams.get(k);
      if (!s) {
        s = new WStream(info);
        this.streams.set(k, s);
        if (info.resumeFrom !== undefined) {
          s.resumeFrom = info.resumeFrom;
          s.nextSeq = info.resumeFrom;
        }
      }
      streams[info.index] = s;
    }
    this.rings.push({ id, lostTokensUpTo, blocked: false, consumer: new RingConsumer(sab), streams });
    this.bell.ring(true);
  }

  /** The bytes of an OVERSIZE marker (arrive by message; the ring waits for them). */
  addOversize(ringId: number, token: number, frame: Uint8Array): void {
    this.oversize.set(`${ringId}:${token}`, frame);
    for (const r of this.rings) if (r.id === ringId) r.blocked = false;
    this.bell.ring(true);
  }

  start(): void {
    this.loop = this.run().catch((e: unknown) => {
      log.error({ err: e }, 'writer loop failed');
      this.deps.emit({ type: 'write-error', code: 'EDGECAP_ERR_WRITE_FAILED', message: `writer loop failed: ${(e as Error).message}`, path: undefined });
    });
  }

  /** Drain everything, flush, close (rename) every file. Rings should be closed first. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.bell.ring(true);
    await this.loop;
  }

  private hasWork = (): boolean => {
    for (const r of this.rings) if (!r.blocked && (!r.consumer.isEmpty() || r.consumer.closed)) return true;
    return false;
  };

  private async run(): Promise<void> {
    let nextFlush = performance.now() + this.tickMs;
    let nextSync = performance.now() + this.o.fsyncIntervalMs;
    let lastYield = performance.now();
    let stopWaitUntil = 0;
    for (;;) {
      const n = this.drainAll();
      let now = performance.now();
      if (now >= nextFlush) {
        this.flushAll(now);
        this.salvageAbandoned();
        this.commitFinished();
        nextFlush += this.tickMs;
        if (nextFlush <= now) nextFlush = now + this.tickMs;
      }
      if (now >= nextSync) {
        this.syncAll();
        nextSync = now + this.o.fsyncIntervalMs;
      }
      if (this.syncing > MAX_SYNCING) {
        await this.throttleSyncs();
        lastYield = performance.now();
      }
      if (this.stopping && n === 0) {
        const blocked = this.rings.some((r) => !r.consumer.isEmpty());
        if (!blocked) break;
        // an oversize message may still be in flight: wait for it, bounded
        if (stopWaitUntil === 0) stopWaitUntil = now + 2000;
        if (now > stopWaitUntil) {
          log.error({ rings: this.rings.length }, 'stop: oversize frames never arrived; abandoning the rest of those rings');
          break;
        }
      }
      now = performance.now();
      if (n === 0) {
        const deepUntil = this.stopping ? undefined : this.deepSleepUntil();
        if (deepUntil !== undefined) {
          // nothing buffered, unsynced or waiting to be renamed: sleep until a producer rings
          // (every push does while we sleep deep) or the oldest open file is due to rotate
          await this.bell.wait(deepUntil - now, this.hasWork, true);
          // what woke us is flushed at once (its latency is what flush_interval_ms bounds)
          nextFlush = Math.min(nextFlush, performance.now());
        } else {
          const t = Math.max(0, Math.min(nextFlush, nextSync) - now);
          await this.bell.wait(this.stopping ? Math.min(t, 5) : t, this.hasWork);
        }
        lastYield = performance.now();
      } else if (now - lastYield > 5) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
    }
    this.flushAll(performance.now());
    for (const s of this.streams.values()) this.finalize(s);
    await this.settleAll();
    this.salvageAbandoned();
    this.commitFinished();
    // Streams nothing arrived for since this writer replaced a dead one: what their producers
    // numbered from resumeFrom on died with that thread.
    for (const s of this.streams.values()) {
      if (s.resumeFrom < 0) continue;
      const numbered = s.stats[Stat.NEXT_SEQ]!;
      if (numbered > s.resumeFrom) this.lostToCrash(s, s.resumeFrom, numbered - 1);
      s.resumeFrom = -1;
    }
    // Readings dropped on a write error whose GAP frame had no later write to ride on: record
    // the gap in the state store, so the drop stays explained.
    for (const s of this.streams.values()) {
      if (s.gapFrom < 0 || !this.deps.store.recordGap) continue;
      try {
        this.deps.store.recordGap({ ...s.key, from_seq: s.gapFrom, to_seq: s.gapTo, reason: 'write_error', time_us: nowMicros() });
        s.gapFrom = -1;
      } catch (e) {
        log.error({ err: e, stream: streamKeyString(s.key) }, 'could not record a write_error gap at stop');
      }
    }
  }

  /**
   * When the writer has nothing timed to do (no stream holds unwritten or unsynced bytes, no
   * file waits for its fdatasync, rename or salvage), the time its next timed duty falls due:
   * the oldest open file's age rotation (Infinity if no file is open). Undefined: stay on ticks.
   * Idle, this takes the writer from 1000/(flush_interval_ms/2) wake-ups a second to none.
   */
  private deepSleepUntil(): number | undefined {
    if (this.finished.length > 0 || this.abandoned.length > 0 || this.syncing > 0) return undefined;
    let until = Infinity;
    for (const s of this.streams.values()) {
      if (s.batchLen > 0 || s.unsynced || (s.gapFrom >= 0 && s.fd >= 0)) return undefined;
      if (s.fd >= 0) until = Math.min(until, s.openedAt + this.o.maxFileAgeMs);
    }
    return until;
  }

  private drainAll(): number {
    let total = 0;
    for (const r of this.rings) {
      if (r.blocked) continue;
      total += r.consumer.drain((buf, off, _len, dv) => {
        const type = buf[off + RecOff.type]!;
        const flags = buf[off + RecOff.flags]!;
        const s = r.streams[dv.getUint16(off + RecOff.stream, true)];
        const firstSeq = dv.getFloat64(off + RecOff.firstSeq, true);
        const count = dv.getUint32(off + RecOff.count, true);
        let frame: Uint8Array;
        if (type === RecType.OVERSIZE && s && dv.getUint32(off + RecOff.body, true) <= r.lostTokensUpTo) {
          // its bytes were posted to the writer thread that died
          if (this.resume(s, firstSeq, count)) this.lostToCrash(s, firstSeq, firstSeq + count - 1);
          return true;
        }
        if (type === RecType.OVERSIZE) {
          const k = `${r.id}:${dv.getUint32(off + RecOff.body, true)}`;
          const f = this.oversize.get(k);
          if (!f) {
            r.blocked = true; // bytes not here yet: keep order, retry when they arrive
            return false;
          }
          this.oversize.delete(k);
          frame = f;
        } else {
          frame = buf.subarray(off + REC_PREFIX_BYTES, off + _len);
        }
        if (!s) {
          log.error({ ring: r.id }, 'record for an unknown stream index; dropped');
          return true;
        }
        if (s.resumeFrom >= 0 && !this.resume(s, firstSeq, count)) return true;
        this.appendFrame(s, frame, firstSeq, count, (flags & RecFlag.READING) !== 0, (flags & RecFlag.BINARY) !== 0);
        return true;
      });
    }
    if (this.rings.some((r) => r.consumer.ended)) this.dropRings((r) => r.consumer.ended);
    return total;
  }

  /**
   * First frames of a stream after a writer restart: false = skip it (already in a file: the
   * dead thread consumed it without releasing it); a frame past resumeFrom makes the seqs
   * between a 'writer_crash' gap (they died in the dead thread's memory).
   */
  private resume(s: WStream, firstSeq: number, count: number): boolean {
    if (s.resumeFrom < 0) return true;
    if (firstSeq + count <= s.resumeFrom) return false;
    if (firstSeq > s.resumeFrom) this.lostToCrash(s, s.resumeFrom, firstSeq - 1);
    s.resumeFrom = -1;
    return true;
  }

  private lostToCrash(s: WStream, from: number, to: number): void {
    if (from > to) return;
    if (to + 1 > s.nextSeq) s.nextSeq = to + 1;
    log.warn({ stream: streamKeyString(s.key), from, to }, 'readings lost with a dead writer thread');
    try {
      this.deps.store.recordGap?.({ ...s.key, from_seq: from, to_seq: to, reason: 'writer_crash', time_us: nowMicros() });
    } catch (e) {
      log.error({ err: e, stream: streamKeyString(s.key), from, to }, 'could not record a writer_crash gap');
    }
  }

  /** Remove rings; streams no longer fed by any ring get their files finished now. */
  private dropRings(which: (r: (typeof this.rings)[number]) => boolean): void {
    const gone = this.rings.filter(which);
    this.rings = this.rings.filter((r) => !which(r));
    for (const r of gone) {
      // how far each stream got; a stream nothing arrived for since a restart got to resumeFrom
      this.retired.set(
        r.id,
        r.streams.filter((s): s is WStream => s !== undefined).map((s) => ({ key: s.key, nextSeq: Math.max(s.nextSeq, s.resumeFrom) })),
      );
      for (const s of r.streams) {
        if (!s || this.rings.some((x) => x.streams.includes(s))) continue;
        this.flush(s);
        this.finalize(s);
      }
    }
  }

  /**
   * Take over a ring whose producer is gone (its collector thread crashed): drain what it
   * published, drop it, and say how far each of its streams got (the seq after the last one
   * written), so the engine can explain what the dead producer numbered but never published.
   */
  async retireRing(id: number, graceful = false): Promise<{ key: StreamKey; nextSeq: number }[]> {
    let r = this.rings.find((x) => x.id === id);
    if (r && graceful) {
      // closed by a producer that stopped cleanly: let the loop drain it (an oversize frame's
      // bytes may still be on their way), bounded
      const until = performance.now() + RETIRE_WAIT_MS;
      while (this.rings.includes(r) && !this.stopping && performance.now() < until) await new Promise((res) => setTimeout(res, 5));
      r = this.rings.find((x) => x.id === id);
    }
    if (r) {
      this.drainAll();
      if (this.rings.includes(r)) this.dropRings((x) => x === r);
      // the engine explains the rest from here: no writer_crash gap on top of its own
      for (const s of r.streams) if (s) s.resumeFrom = -1;
      // its files wait for the loop's next tick, which a loop in deep sleep has not set
      this.bell.ring(true);
    }
    // also a ring that ended (closed and drained) before the engine asked
    const out = this.retired.get(id) ?? [];
    this.retired.delete(id);
    return out;
  }

  private appendFrame(s: WStream, frame: Uint8Array, firstSeq: number, count: number, reading: boolean, binary: boolean): void {
    const hasContent = s.fd >= 0 || s.batchLen > 0;
    if (reading && (s.fd >= 0 || s.batchReadings > 0) && s.batchBinary !== binary) {
      // data type changed: a file holds one type
      this.flush(s);
      this.finalize(s);
    } else if (hasContent) {
      const projected = (s.fd >= 0 ? s.goodEnd : HEADER_ESTIMATE) + s.batchLen + frame.length;
      if (projected > this.o.maxFileBytes) {
        this.flush(s);
        this.finalize(s);
      }
    }
    if (reading && s.fd < 0 && s.batchReadings === 0) s.batchBinary = binary;
    s.append(frame, firstSeq, count, reading);
    if (s.batchLen >= BATCH_FLUSH_BYTES) this.flush(s);
  }

  private flushAll(now: number): void {
    for (const s of this.streams.values()) {
      this.flush(s);
      if (s.fd >= 0 && now - s.openedAt >= this.o.maxFileAgeMs) this.finalize(s);
    }
  }

  private syncAll(): void {
    for (const s of this.streams.values()) {
      if (s.fd < 0 || !s.unsynced) continue;
      try {
        this.fs.fdatasyncSync(s.fd);
        s.unsynced = false;
      } catch (e) {
        this.writeError(s, e);
        this.abandonFile(s);
      }
    }
  }

  /** Write the stream's batch (and a pending write_error GAP) with one write. */
  private flush(s: WStream): void {
    if (s.batchLen === 0 && s.gapFrom < 0) return;
    if (s.batchLen === 0 && s.fd < 0 && s.gapFrom >= 0 && s.batchFirstSeq < 0) {
      // only a gap to report: it waits for the next data so no file is opened for it alone
      return;
    }
    const parts: Uint8Array[] = [];
    let opened = false;
    try {
      if (s.fd < 0) {
        const startUs = s.batchStartUs || nowMicros();
        const p = inProgressPath(this.o.captureDir, s.key, startUs, newFileId());
        this.fs.mkdirSync(path.dirname(p), { recursive: true, mode: DIR_MODE });
        const { bytes, header } = encodeFileStart({
          kind: s.key.kind,
          name: s.key.name,
          method: s.key.method,
          type: s.batchBinary ? 'binary' : 'tabular',
          tags: this.o.tags,
          start_us: startUs,
          part_id: this.o.partId,
          ...(s.batchBinary && s.info.mimeType ? { mime_type: s.info.mimeType } : {}),
          ...(s.info.params && Object.keys(s.info.params).length ? { params: s.info.params } : {}),
        });
        s.fd = this.fs.openSync(p, 'wx', FILE_MODE);
        s.path = p;
        s.header = header;
        s.goodEnd = 0;
        s.fileReadings = 0;
        s.openedAt = performance.now();
        opened = true;
        parts.push(bytes);
      }
    } catch (e) {
      this.writeError(s, e);
      if (s.fd >= 0) this.abandonFile(s);
      this.dropBatch(s);
      return;
    }
    if (s.gapFrom >= 0) parts.push(this.enc.gap(s.gapFrom, s.gapTo, 'write_error', nowMicros()));
    parts.push(s.batch.subarray(0, s.batchLen));
    // each part written in place (a file header / gap is small; no copy of the batch to join them)
    let total = 0;
    try {
      for (const buf of parts) {
        let off = 0;
        while (off < buf.length) {
          const w = this.fs.writeSync(s.fd, buf, off, buf.length - off, s.goodEnd + total + off);
          if (w <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
          off += w;
        }
        total += buf.length;
      }
    } catch (e) {
      this.writeError(s, e);
      this.dropBatch(s);
      // never leave a torn frame: cut back to the last good offset, or give up the file
      if (opened) this.abandonFile(s, true);
      else {
        try {
          this.fs.ftruncateSync(s.fd, s.goodEnd);
          this.finalize(s);
        } catch {
          this.abandonFile(s);
        }
      }
      return;
    }
    s.goodEnd += total;
    s.fileReadings += s.batchReadings;
    s.stats[Stat.BYTES] = s.stats[Stat.BYTES]! + total;
    s.stats[Stat.WRITTEN_SEQ] = Math.max(s.stats[Stat.WRITTEN_SEQ]!, s.nextSeq);
    s.unsynced = true;
    s.gapFrom = -1;
    s.lastErrCode = '';
    s.resetBatch();
  }

  private dropBatch(s: WStream): void {
    if (s.batchFirstSeq >= 0) {
      if (s.gapFrom < 0) s.gapFrom = s.batchFirstSeq;
      s.gapTo = s.nextSeq - 1;
      s.stats[Stat.DROPPED_ON_WRITE_ERROR] = s.stats[Stat.DROPPED_ON_WRITE_ERROR]! + s.batchReadings;
    }
    s.resetBatch();
  }

  private writeError(s: WStream, e: unknown, p = s.path): void {
    s.stats[Stat.WRITE_ERRORS] = s.stats[Stat.WRITE_ERRORS]! + 1;
    const code = (e as NodeJS.ErrnoException).code ?? 'EDGECAP_ERR_WRITE_FAILED';
    if (code !== s.lastErrCode) {
      s.lastErrCode = code;
      log.warn({ err: e, stream: streamKeyString(s.key), path: p }, 'capture write failed');
      this.deps.emit({ type: 'write-error', code, message: (e as Error).message, path: p || undefined });
    }
  }

  /**
   * Close a file after an error. A file with no good frame is removed; one with good frames is
   * cut back to them and salvaged at the next flush tick (salvageAbandoned): re-synced, its seq
   * persisted, renamed. Until then (or if salvaging keeps failing) it is a .prog that start-up
   * recovery finishes.
   */
  private abandonFile(s: WStream, removeIfEmpty = false): void {
    const fd = s.fd;
    s.fd = -1;
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
    this.abandoned.push({ s, path: s.path, goodEnd: s.goodEnd, header: s.header, readings: s.fileReadings, nextSeq: s.nextSeq, cut });
  }

  private salvageFailing = false;

  /**
   * Abandoned files, cut back to their last good frame and synced again, join the files waiting
   * for commitFinished (persist seq, then rename). One that still fails waits for the next tick.
   */
  private salvageAbandoned(): void {
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
        this.finished.push({ s: a.s, path: a.path, header: a.header, readings: a.readings, nextSeq: a.nextSeq, failed: false, settled: true, done: undefined });
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
   * in commitFinished() at the next flush tick (a crash in between leaves a synced .prog
   * that start-up recovery finishes, exactly as a crash between close and rename always did).
   */
  private finalize(s: WStream): void {
    if (s.fd < 0) return;
    const fd = s.fd;
    s.fd = -1;
    const f: Finished = { s, path: s.path, header: s.header, readings: s.fileReadings, nextSeq: s.nextSeq, failed: false, settled: false, done: undefined };
    this.finished.push(f);
    const close = (): void => {
      try {
        this.fs.closeSync(fd);
      } catch (e) {
        f.failed = true;
        this.writeError(s, e, f.path);
      }
      f.settled = true;
    };
    const async = this.fs.fdatasync;
    if (!async) {
      try {
        this.fs.fdatasyncSync(fd);
      } catch (e) {
        f.failed = true;
        this.writeError(s, e, f.path);
      }
      close();
      return;
    }
    this.syncing++;
    f.done = new Promise<void>((resolve) => {
      async.call(this.fs, fd, (err) => {
        if (err) {
          f.failed = true;
          this.writeError(s, err, f.path);
        }
        close();
        this.syncing--;
        resolve();
      });
    });
  }

  /** Bound the rotated files in flight: wait for the oldest syncs when too many are running. */
  private async throttleSyncs(): Promise<void> {
    while (this.syncing > MAX_SYNCING) {
      const f = this.finished.find((x) => !x.settled);
      if (!f?.done) return;
      await f.done;
    }
  }

  /** Stop: every rotated file's sync finished. */
  private async settleAll(): Promise<void> {
    for (const f of this.finished) if (f.done) await f.done;
  }

  /**
   * Persist the seqs of the files finalized (synced and closed) since the last call in ONE sync
   * transaction, then rename and announce each, in rotation order (a file still syncing, and
   * every file after it, waits for the next call).
   */
  private seqPersistFailing = false;

  private commitFinished(): void {
    let n = 0;
    while (n < this.finished.length && this.finished[n]!.settled) n++;
    if (n === 0) return;
    const list = this.finished.slice(0, n);
    this.finished = this.finished.slice(n);
    const seqs = new Map<WStream, number>();
    for (const f of list) seqs.set(f.s, Math.max(seqs.get(f.s) ?? 0, f.nextSeq));
    try {
      const store = this.deps.store;
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
        this.deps.emit({ type: 'file-finished', path: fin, header: f.header, readings: f.readings });
      } catch (e) {
        this.writeError(f.s, e, f.path);
      }
    }
  }
}
