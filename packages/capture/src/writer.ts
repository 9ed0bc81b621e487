/**
 * Writer: ONE thread drains every ring into per-stream batch buffers and group-commits them.
 *
 *   rings ──drain──► stream batch (frames, copied once) ──flush tick──► write(fd, batch @ goodEnd)
 *     doorbell.wait (waitAsync, timeout)        │ every flush_interval_ms/2: one write per stream
 *     (deep: nothing pending → no timer;        │   (none while nothing is buffered or unsynced)
 *      every push rings the bell)               │
 *                                               │ every fsync_interval_ms: fdatasync
 *                                               │   (a new stream's first: + fsync of new folders)
 *                                               │ size/age limit: fdatasync; every commitIntervalMs
 *                                               │   ONE seq transaction, rename .prog→.capture
 *                                               └ error: truncate back to goodEnd (or drop the file),
 *                                                 count, GAP 'write_error' once writing works again
 *
 * Each stream's batch and open file: writer-stream.ts. A file's end (fdatasync off the thread at
 * rotation, salvage after a write error, persist-seq-then-rename every commitIntervalMs, at a
 * flush tick): committer.ts.
 * Persisting seqs only before renames means no per-flush state write on the hot path.
 *
 * Restarted writer (the previous thread died): the engine recovered the dead writer's .prog
 * files and hands each stream's `resumeFrom` (everything below is in a file or explained). The
 * rings still hold what the dead thread had not consumed: frames below resumeFrom are skipped
 * (on disk already: consumed but not yet released when the thread died); a first frame above it
 * means the dead thread lost [resumeFrom, first) in memory: recorded as a 'writer_crash' gap.
 * OVERSIZE markers whose bytes went to the dead thread (token <= lostTokensUpTo) are gaps too.
 */
import path from 'node:path';
import { DEFAULTS, logger, nowMicros, parentsChangedByMkdir, streamKeyString, type StreamKey } from '@edgecap/core';
import { DIR_MODE, encodeFileStart, FILE_MODE, FrameEncoder, inProgressPath, newFileId } from '@edgecap/format';
import { Doorbell, RingConsumer } from '@edgecap/ring';
import { Committer, type SeqSink } from './committer.js';
import { REC_PREFIX_BYTES, RecFlag, RecOff, RecType, Stat } from './layout.js';
import type { StreamInfo, WriterEvent } from './types.js';
import { BATCH_FLUSH_BYTES, HEADER_ESTIMATE, Headroom, realFs, writeError, WStream, type WriterFs } from './writer-stream.js';

export { realFs, ledgerReserve, type WriterFs } from './writer-stream.js';
export type { SeqSink } from './committer.js';

const log = logger('capture.writer');

/** The default commit interval is the fsync interval up to this (a file is seen by sync at most this late). */
const MAX_COMMIT_INTERVAL_MS = 1000;

/** How long retireRing(graceful) waits for a closed ring to drain on its own. */
const RETIRE_WAIT_MS = 2_000;

export interface WriterOptions {
  captureDir: string;
  partId: string;
  tags: string[];
  maxFileBytes: number;
  maxFileAgeMs: number;
  flushIntervalMs: number;
  fsyncIntervalMs: number;
  /**
   * Finished files are renamed (after ONE seq transaction for all of them) at most this often
   * (default fsyncIntervalMs, at most 1 s; 0: every flush tick). Each transaction is a synchronous LMDB
   * commit, ~12 % of the writer's CPU at the realistic load when it ran every tick (5 rotations
   * a second there, mostly camera files); a finished file waits at most this long to be seen
   * by sync, which looks every sync_interval (6 s by default).
   */
  commitIntervalMs?: number;
  bellSab: SharedArrayBuffer;
  /** The janitor's disk_usage_deletion_threshold: capture's ledger reserve stays below it (Headroom). */
  diskUsageThreshold?: number;
}

export interface WriterDeps {
  fs?: WriterFs;
  store: SeqSink;
  emit: (ev: WriterEvent) => void;
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
  /** Rotated and abandoned files, up to their rename. */
  private readonly files: Committer;
  /** How far each stream of a dropped ring got, until the engine asks (retireRing). */
  private readonly retired = new Map<number, { key: StreamKey; nextSeq: number }[]>();
  /** Free space kept for the ledger (writer-stream.ts). */
  private readonly headroom: Headroom;

  constructor(
    private readonly o: WriterOptions,
    private readonly deps: WriterDeps,
  ) {
    this.fs = deps.fs ?? realFs;
    this.files = new Committer(this.fs, deps.store, deps.emit);
    this.headroom = new Headroom(o.captureDir, this.fs.statfs?.bind(this.fs), o.diskUsageThreshold ?? DEFAULTS.disk_usage_deletion_threshold);
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
    const commitEvery = this.o.commitIntervalMs ?? Math.min(this.o.fsyncIntervalMs, MAX_COMMIT_INTERVAL_MS);
    let nextCommit = performance.now() + commitEvery;
    let lastYield = performance.now();
    let stopWaitUntil = 0;
    for (;;) {
      const n = this.drainAll();
      let now = performance.now();
      if (now >= nextFlush) {
        this.flushAll(now);
        this.files.salvage();
        if (now >= nextCommit) {
          this.files.commit();
          nextCommit = now + commitEvery;
        }
        nextFlush += this.tickMs;
        if (nextFlush <= now) nextFlush = now + this.tickMs;
      }
      if (now >= nextSync) {
        this.syncAll();
        nextSync = now + this.o.fsyncIntervalMs;
      }
      if (this.files.overloaded) {
        await this.files.throttle();
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
    for (const s of this.streams.values()) this.files.finalize(s);
    await this.files.settleAll();
    this.files.salvage();
    this.files.commit();
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
    if (!this.files.idle) return undefined;
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
        this.files.finalize(s);
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
      this.files.finalize(s);
    } else if (hasContent) {
      const projected = (s.fd >= 0 ? s.goodEnd : HEADER_ESTIMATE) + s.batchLen + frame.length;
      if (projected > this.o.maxFileBytes) {
        this.flush(s);
        this.files.finalize(s);
      }
    }
    if (reading && s.fd < 0 && s.batchReadings === 0) s.batchBinary = binary;
    s.append(frame, firstSeq, count, reading);
    if (s.batchLen >= BATCH_FLUSH_BYTES) this.flush(s);
  }

  private flushAll(now: number): void {
    for (const s of this.streams.values()) {
      this.flush(s);
      if (s.fd >= 0 && now - s.openedAt >= this.o.maxFileAgeMs) this.files.finalize(s);
    }
  }

  private syncAll(): void {
    for (const s of this.streams.values()) {
      if (s.fd < 0 || !s.unsynced) continue;
      try {
        this.fs.fdatasyncSync(s.fd);
        s.unsynced = false;
        // a new stream's folders durable with the first bytes of its first file
        if (s.newDirs.length > 0 && this.fs.fsyncDirSync) for (const d of s.newDirs) this.fs.fsyncDirSync(d);
        s.newDirs = [];
      } catch (e) {
        writeError(s, e, this.deps.emit);
        this.files.abandon(s);
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
    try {
      // before a file is opened for it: a batch refused for want of space opens and removes nothing
      this.headroom.take(s.batchLen + (s.fd < 0 ? HEADER_ESTIMATE : 0) + (s.gapFrom >= 0 ? HEADER_ESTIMATE : 0));
    } catch (e) {
      writeError(s, e, this.deps.emit);
      this.dropBatch(s);
      return;
    }
    const parts: Uint8Array[] = [];
    let opened = false;
    try {
      if (s.fd < 0) {
        const startUs = s.batchStartUs || nowMicros();
        const p = inProgressPath(this.o.captureDir, s.key, startUs, newFileId());
        const dir = path.dirname(p);
        const first = this.fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
        const made = parentsChangedByMkdir(dir, typeof first === 'string' ? first : undefined, this.o.captureDir);
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
        s.newDirs = made;
        s.path = p;
        s.header = header;
        s.goodEnd = 0;
        s.fileReadings = 0;
        s.openedAt = performance.now();
        opened = true;
        parts.push(bytes);
      }
    } catch (e) {
      writeError(s, e, this.deps.emit);
      if (s.fd >= 0) this.files.abandon(s);
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
      writeError(s, e, this.deps.emit);
      this.dropBatch(s);
      // never leave a torn frame: cut back to the last good offset, or give up the file
      if (opened) this.files.abandon(s, true);
      else {
        try {
          this.fs.ftruncateSync(s.fd, s.goodEnd);
          this.files.finalize(s);
        } catch {
          this.files.abandon(s);
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


}
