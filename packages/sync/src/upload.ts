/**
 * One upload attempt of one file over edgecap.sync.v1 (the edgecap Uploader, uploader.ts; the
 * body of a sync worker thread; also callable in-process).
 *
 *   ≤ 1 MiB: blocking open/fstat/read/close (no thread-pool hops) ─┐
 *   ≤ 16 MiB: blocking reads, a loop turn apart, into memory ──────┼─ sha256 as read (one pass)
 *   bigger: sha256 pass, then a second pass streaming chunks ──────┘
 *      ─► Upload stream: [metadata] [chunk] ... end   ◄── UploadResponse (after durable commit)
 *
 * In memory each chunk has a few free bytes before it (layoutFor): its protobuf tag and length
 * are written there and the message goes to grpc-js pre-encoded (target.ts PREFRAMED), so the
 * chunk is not copied by the encoder.
 *
 * Each chunk waits for the edge-wide bandwidth cap (if set) and for room in the connection's
 * window of unacknowledged bytes (link.ts). No fixed deadline: a watchdog cuts the call when it
 * makes no progress (a write completing, or bytes acknowledged) for sync_stall_timeout_ms.
 *
 * Never retries and never sleeps: a failure is returned as data ({kind, grpcCode, message}) and
 * the engine decides (connectivity gate, per-file backoff, failed/). So a retrying file can
 * never hold a pool thread hostage.
 */
import crypto from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { DataSyncClient, FileMetadata, UploadRequest, UploadResponse__Output } from '@edgecap/proto';
import { classifyStatus, type FailureKind } from './errors.js';
import { DEFAULT_STALL_TIMEOUT_MS, LinkMonitor, MAX_TARGET_QUEUE_MS, MIN_WINDOW_BYTES, capPiece, refundBytes, takeBytes, type RateLimitShare } from './link.js';
import { DEFAULT_CHUNK_BYTES, DEFAULT_KEEPALIVE_TIMEOUT_MS, PREFRAMED, callMetadata, makeClient, type IngestTarget } from './target.js';

export interface UploadTask {
  path: string;
  target: IngestTarget;
  addressIndex: number;
  /** Metadata minus what the worker computes (size, sha256, mtime_ms). */
  meta: Omit<FileMetadata, 'size' | 'sha256' | 'mtime_ms'>;
  chunkBytes?: number;
  /**
   * Absolute deadline for the call, ms (default none: the stall watchdog decides). The viam
   * protocol keeps its own default (120 s + 1 s per 256 KiB).
   */
  deadlineMs?: number;
  /** sync_stall_timeout_ms: no progress for this long cuts the call (default 60000). */
  stallTimeoutMs?: number;
  /** sync_max_bytes_per_second: the edge-wide bucket, shared by every thread (link.ts). */
  rateLimit?: RateLimitShare;
  /** 'viam': a viam-server `.capture` file found in the capture dir (default: edgecap's own format). */
  format?: 'edgecap' | 'viam';
  /** Lower the running sync thread's priority by this much (Linux: per thread; see worker.ts). */
  niceIncrement?: number;
  /** The engine's outage count (freshChannels). */
  channelEpoch?: number;
}

/**
 * Which file an attempt read: stat of the open file, taken BEFORE its bytes were read. The
 * engine deletes a synced file only while it still matches (any later change, append or
 * replacement, shows in size, mtime or inode), so nothing written after the read is lost.
 */
export interface ReadIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
}

export function identityOf(st: { size: number; mtimeMs: number; ino: number; dev: number }): ReadIdentity {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev };
}

export type UploadOutcome =
  | { ok: true; status: 'committed' | 'already_have'; bytes: number; sha256: string; read?: ReadIdentity }
  | { ok: false; kind: FailureKind | 'local'; grpcCode?: number; errno?: string; message: string };

const clients = new Map<string, DataSyncClient>();
const links = new WeakMap<DataSyncClient, LinkMonitor>();

function clientKey(t: IngestTarget, idx: number): string {
  return `${JSON.stringify(t)}#${idx}`;
}

/** One channel per (target, address) per thread, reused across tasks (batch.ts too). */
export function clientFor(t: IngestTarget, idx: number): DataSyncClient {
  const key = clientKey(t, idx);
  let c = clients.get(key);
  if (!c) {
    c = makeClient(t, idx);
    clients.set(key, c);
  }
  return c;
}

let epochSeen = 0;

/**
 * A task from after an outage (a higher epoch than this thread has seen) closes this thread's
 * channels first: a connection from before the outage may be dead without knowing it.
 */
export function freshChannels(epoch: number | undefined): void {
  if (epoch === undefined || epoch <= epochSeen) return;
  epochSeen = epoch;
  closeClients();
}

/** The link monitor of a channel (one per channel: its uploads share one connection's queue). */
export function linkFor(c: DataSyncClient, t: IngestTarget, stallTimeoutMs: number): LinkMonitor {
  let l = links.get(c);
  if (!l) {
    const targetQueueMs = Math.min(MAX_TARGET_QUEUE_MS, (t.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS) / 4);
    l = new LinkMonitor(c, { stallTimeoutMs, targetQueueMs, metadata: () => callMetadata(t) });
    links.set(c, l);
  }
  return l;
}


/**
 * One upload call's life on the link, the same for Upload and UploadBatch: writes that respect
 * HTTP/2 back-pressure and count toward the link's window when issued and as progress when
 * they complete; a watchdog that gives up after `stallMs` without progress (acknowledged
 * bytes count: a slow link that moves is never cut); settle() once, returning what was issued
 * and not written to the link.
 */
export class LinkedCall {
  settled = false;
  /** Issued bytes of this call whose write has not completed (returned to the link if the call ends first). */
  private pending = 0;
  private lastProgress = Date.now();
  private readonly unsubscribe: () => void;
  private readonly watchdog: NodeJS.Timeout;
  call: grpc.ClientWritableStream<UploadRequest> | undefined;

  constructor(
    private readonly link: LinkMonitor,
    stallMs: number,
    onStall: () => void,
  ) {
    this.unsubscribe = link.onAck(() => this.progress());
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastProgress > stallMs) onStall();
    }, Math.max(50, Math.min(1000, stallMs / 4)));
  }

  private progress(): void {
    this.lastProgress = Date.now();
  }

  /** The first call ends it (true); later calls do nothing (false). */
  settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearInterval(this.watchdog);
    this.unsubscribe();
    if (this.pending > 0) this.link.abandon(this.pending);
    this.pending = 0;
    this.link.poke();
    return true;
  }

  readonly cancelled = (): boolean => this.settled;

  /** Largest chunk message now: `chunk`, half the link's window (so a probe's answer frees room), and the pace's piece. */
  piece(chunk: number, cap: RateLimitShare | undefined): number {
    return Math.min(chunk, Math.max(MIN_WINDOW_BYTES, Math.floor(this.link.window / 2)), cap ? capPiece(cap) : Infinity);
  }

  /**
   * Send `len` bytes of `buf` from `off` as chunk messages of at most piece() bytes, each once the
   * pace (`cap`: bandwidth cap, capture first) and the link's window have room for it. `preframed`:
   * `buf` has RESERVE free bytes before `off` (layoutFor), so a span that goes in one piece is
   * handed to grpc-js pre-encoded (no copy); smaller pieces go as views. Views of `buf` may be
   * serialised later: nobody may write to it again. Returns early once the call has ended.
   */
  async sendSpan(buf: Buffer, off: number, len: number, o: { chunk: number; cap: RateLimitShare | undefined; preframed: boolean }): Promise<void> {
    for (let at = 0; at < len && !this.settled; ) {
      const n = Math.min(len - at, this.piece(o.chunk, o.cap));
      if (o.cap) await takeBytes(o.cap, n);
      if (!this.settled) await this.link.room(n, this.cancelled);
      if (this.settled) {
        // reserved, never sent: the next call gets the time back
        if (o.cap) refundBytes(o.cap, n);
        return;
      }
      const view = buf.subarray(off + at, off + at + n);
      await this.write(o.preframed && n === len ? { chunk: view, [PREFRAMED]: frameChunk(buf, off, len) } : { chunk: view }, n);
      at += n;
    }
  }

  /** Write `msg` (carrying `n` chunk bytes); resolves when the stream takes more (or the call ended). */
  write(msg: object, n: number): Promise<void> {
    const call = this.call!;
    return new Promise<void>((res) => {
      if (this.settled) return res();
      this.link.issue(n);
      this.pending += n;
      const ok = call.write(msg as UploadRequest, () => {
        if (this.settled) return;
        this.pending -= n;
        this.link.wrote(n);
        this.progress();
      });
      if (ok) return res();
      const go = (): void => {
        call.off('drain', go).off('status', go).off('error', go);
        res();
      };
      call.on('drain', go).on('status', go).on('error', go);
    });
  }
}

/** A stalled connection: the next attempt gets a fresh one instead of queueing behind it. */
export function dropClient(t: IngestTarget, idx: number, c: DataSyncClient): void {
  const key = clientKey(t, idx);
  if (clients.get(key) === c) {
    clients.delete(key);
    links.get(c)?.close();
    c.close();
  }
}

export function closeClients(): void {
  for (const c of clients.values()) {
    links.get(c)?.close();
    c.close();
  }
  clients.clear();
  for (const close of closers) close();
}

/** Other protocols' channel caches (uploader.ts), closed with ours. */
const closers: (() => void)[] = [];
export function onCloseClients(fn: () => void): void {
  closers.push(fn);
}

/**
 * One read of a file being uploaded: a blocking call on this sync thread, not on libuv's pool.
 * The pool's threads run at the process's priority, so there a draining backlog's page-cache
 * copies escaped the sync threads' renice and held the CPU a 1 kHz collector woke up for (perf
 * sched: its wake-ups waited up to ~10 ms behind them). A turn of the event loop follows each
 * read, so the thread's other uploads keep moving.
 */
async function readAt(fh: fs.FileHandle, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  const n = fsSync.readSync(fh.fd, buf, off, len, pos);
  await new Promise<void>((r) => setImmediate(r));
  return n;
}

async function hashFile(fh: fs.FileHandle, size: number, chunk: number): Promise<Buffer> {
  const h = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(size, 1)));
  let pos = 0;
  while (pos < size) {
    const bytesRead = await readAt(fh, buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  if (pos !== size) throw Object.assign(new Error(`file shrank while hashing (${pos} of ${size} bytes)`), { code: 'ESHRANK' });
  return h.digest();
}

/** Files up to this size are read once, into memory (a few in flight per thread). */
export const WHOLE_READ_BYTES = 16 * 1024 * 1024;

/**
 * Bytes kept free before each chunk in memory: the protobuf tag and length of the chunk field
 * are written there, so the message handed to grpc-js is a view of the bytes as read (no copy
 * by the protobuf encoder; grpc-js's own 5-byte framing copy is the only one left).
 */
export const RESERVE = 6;

/** A file in memory as chunks, each with RESERVE free bytes before it. */
export interface Layout {
  buf: Buffer;
  /** Offset in buf of chunk i; file position i × chunk. */
  offs: number[];
  lens: number[];
}

/**
 * Buffers of whole-file reads whose uploads were committed, kept for the next file (at most
 * SPARE_BUFFERS per thread): a backlog of 8 MiB files otherwise allocates and frees 8 MiB per
 * file, and that churn of external memory drives the GCs whose helper threads (at the process's
 * priority, not the sync thread's) compete with capture.
 */
const spare: Buffer[] = [];
const SPARE_BUFFERS = 2;

/** A committed upload's buffer, back for the next file (grpc-js has sent every byte of it). */
function release(l: Layout | undefined): void {
  if (l && l.buf.length > SYNC_READ_BYTES && spare.length < SPARE_BUFFERS) spare.push(l.buf);
}

function layoutFor(size: number, chunk: number): Layout {
  const n = Math.max(1, Math.ceil(size / chunk));
  const need = size + n * RESERVE;
  const i = need > SYNC_READ_BYTES ? spare.findIndex((b) => b.length >= need && b.length <= 2 * need) : -1;
  const buf = i >= 0 ? spare.splice(i, 1)[0]! : Buffer.allocUnsafe(need);
  const offs: number[] = [];
  const lens: number[] = [];
  for (let i = 0, pos = 0; i < n; i++) {
    const len = Math.min(chunk, size - pos);
    offs.push(i * (chunk + RESERVE) + RESERVE);
    lens.push(len);
    pos += len;
  }
  return { buf, offs, lens };
}

/** The encoded UploadRequest{chunk} around buf[off, off+len): tag and length go into the reserve before it. */
export function frameChunk(buf: Buffer, off: number, len: number): Buffer {
  let k = 1;
  for (let x = len; x >= 0x80; x = Math.floor(x / 128)) k++;
  const start = off - k - 1;
  buf[start] = 0x12; // field 2 (chunk), wire type 2 (length-delimited)
  let w = start + 1;
  let x = len;
  while (x >= 0x80) {
    buf[w++] = (x & 0x7f) | 0x80;
    x = Math.floor(x / 128);
  }
  buf[w] = x;
  return buf.subarray(start, off + len);
}

function shrank(pos: number, size: number): Error {
  return Object.assign(new Error(`file shrank while reading (${pos} of ${size} bytes)`), { code: 'ESHRANK' });
}

/** Read a whole file into a layout, hashing chunk by chunk as read (one pass). */
async function readWhole(fh: fs.FileHandle, size: number, chunk: number, h: crypto.Hash): Promise<Layout> {
  const l = layoutFor(size, chunk);
  for (let i = 0; i < l.offs.length; i++) {
    let got = 0;
    while (got < l.lens[i]!) {
      const bytesRead = await readAt(fh, l.buf, l.offs[i]! + got, l.lens[i]! - got, i * chunk + got);
      if (bytesRead === 0) throw shrank(i * chunk + got, size);
      got += bytesRead;
    }
    h.update(l.buf.subarray(l.offs[i]!, l.offs[i]! + l.lens[i]!));
  }
  return l;
}

/**
 * Files up to this size are read with blocking calls on the worker thread: four thread-pool
 * hops (open, fstat, read, close) cost more CPU than reading a few KiB, and the other uploads
 * of the thread wait well under a millisecond.
 */
export const SYNC_READ_BYTES = 1024 * 1024;

/** A small file (≤ maxBytes, else undefined), read whole with blocking calls (stat first: see ReadIdentity), hashed as read. */
export function readSmall(file: string, chunk: number, h: crypto.Hash, maxBytes = SYNC_READ_BYTES): { st: fsSync.Stats; whole: Layout } | undefined {
  const fd = fsSync.openSync(file, 'r');
  try {
    const st = fsSync.fstatSync(fd);
    if (st.size > maxBytes) return undefined;
    const l = layoutFor(st.size, chunk);
    for (let i = 0; i < l.offs.length; i++) {
      let got = 0;
      while (got < l.lens[i]!) {
        const n = fsSync.readSync(fd, l.buf, l.offs[i]! + got, l.lens[i]! - got, i * chunk + got);
        if (n === 0) throw shrank(i * chunk + got, st.size);
        got += n;
      }
      h.update(l.buf.subarray(l.offs[i]!, l.offs[i]! + l.lens[i]!));
    }
    return { st, whole: l };
  } finally {
    fsSync.closeSync(fd);
  }
}

export async function uploadFile(task: UploadTask, client?: DataSyncClient): Promise<UploadOutcome> {
  const chunk = task.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const hash = crypto.createHash('sha256');
  let small: ReturnType<typeof readSmall>;
  try {
    small = readSmall(task.path, chunk, hash);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const what = err.syscall === 'open' ? 'open' : 'read';
    return { ok: false, kind: 'local', errno: err.code, message: `cannot ${what} ${task.path}: ${err.message}` };
  }
  let fh: fs.FileHandle | undefined;
  if (!small) {
    try {
      fh = await fs.open(task.path, 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { ok: false, kind: 'local', errno: err.code, message: `cannot open ${task.path}: ${err.message}` };
    }
  }
  try {
    const st = small ? small.st : await fh!.stat();
    const size = st.size;
    let sha: Buffer;
    // Files up to WHOLE_READ_BYTES are read once into memory, hashed as read and sent from
    // there (one read pass); bigger ones are hashed in a first pass and streamed in a second.
    let whole: Layout | undefined = small?.whole;
    try {
      if (whole) sha = hash.digest();
      else if (size <= WHOLE_READ_BYTES) {
        whole = await readWhole(fh!, size, chunk, hash);
        sha = hash.digest();
      } else sha = await hashFile(fh!, size, chunk);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` };
    }
    const c = client ?? clientFor(task.target, task.addressIndex);
    const stallMs = task.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const link = linkFor(c, task.target, stallMs);
    const cap = task.rateLimit;
    const opts: grpc.CallOptions = task.deadlineMs !== undefined ? { deadline: Date.now() + task.deadlineMs } : {};
    return await new Promise<UploadOutcome>((resolve) => {
      const lc = new LinkedCall(link, stallMs, () => {
        done({ ok: false, kind: 'link', grpcCode: grpc.status.DEADLINE_EXCEEDED, message: `upload stalled: no progress for ${stallMs} ms (sync_stall_timeout_ms); the connection is dropped and the file retried` });
        call.cancel();
        if (!client) dropClient(task.target, task.addressIndex, c);
      });
      const done = (o: UploadOutcome): void => {
        if (lc.settle()) resolve(o);
      };
      const call = c.Upload(callMetadata(task.target), opts, (err: grpc.ServiceError | null, res?: UploadResponse__Output) => {
        if (err) {
          done({ ok: false, kind: classifyStatus(err.code), grpcCode: err.code, message: err.details || err.message });
          return;
        }
        if (!res || (res.status !== 'UPLOAD_STATUS_COMMITTED' && res.status !== 'UPLOAD_STATUS_ALREADY_HAVE')) {
          // The server answered, not with a verdict: nothing is known about the bytes.
          done({ ok: false, kind: 'server', message: `unexpected upload response status ${String(res?.status)}` });
          return;
        }
        // committed: the server has every byte, so grpc-js holds no view of the buffer any more
        if (res.status === 'UPLOAD_STATUS_COMMITTED') release(whole);
        done({ ok: true, status: res.status === 'UPLOAD_STATUS_COMMITTED' ? 'committed' : 'already_have', bytes: size, sha256: sha.toString('hex'), read: identityOf(st) });
      });
      lc.call = call;
      const { cancelled } = lc;
      const span = { chunk, cap, preframed: true };
      call.on('error', () => undefined); // reported through the callback
      void (async () => {
        try {
          await lc.write({ metadata: { ...task.meta, size, sha256: sha, mtime_ms: Math.floor(st.mtimeMs) } }, 0);
          let pos = 0;
          if (whole) {
            // One buffer nobody writes to again, its chunks laid out with room to pre-frame them
            const { buf, offs, lens } = whole;
            for (let i = 0; i < offs.length && !lc.settled; i++) {
              await lc.sendSpan(buf, offs[i]!, lens[i]!, span);
              pos += lens[i]!;
            }
          }
          while (pos < size && !lc.settled) {
            // A fresh buffer per chunk: grpc-js may still hold the previous one while serialising.
            const n = Math.min(lc.piece(chunk, cap), size - pos);
            const buf = Buffer.allocUnsafe(RESERVE + n);
            const bytesRead = await readAt(fh!, buf, RESERVE, n, pos);
            if (bytesRead === 0) throw Object.assign(new Error(`file shrank during upload at byte ${pos} of ${size}`), { code: 'ESHRANK' });
            await lc.sendSpan(buf, RESERVE, bytesRead, span);
            pos += bytesRead;
          }
          if (lc.settled) return;
          call.end();
          // Learn when the tail reaches the server: progress for the watchdog while it drains.
          await link.drained(cancelled);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          call.cancel();
          done({ ok: false, kind: 'local', errno: err.code, message: `cannot read ${task.path}: ${err.message}` });
        }
      })();
    });
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

