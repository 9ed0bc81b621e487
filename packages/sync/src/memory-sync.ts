/**
 * Sync of memory mode (storage: "memory"): the files come from a MemoryFileSource (the sealed
 * in-memory capture files), not from capture_dir.
 *
 *   timer ─► link backoff ready? (offline: Health probe every probeIntervalMs)
 *         ─► Health ─► ReportGaps (memory_full, memory_lost, ...) ─► per sealed file, oldest first:
 *            take ─► Upload (same protocol, metadata and file id as a disk file: same dedup)
 *                 ─► COMMITTED | ALREADY_HAVE: release (the memory is freed)
 *                 ─► link/auth/server: untake, one backoff for everything
 *                 ─► rejected: released and counted (memory has no failed/ folder)
 *
 * No ledger and no lease: one process owns the memory, so nothing is written anywhere. Uploads
 * run on this thread: the bytes are already here (no read, no copy to a pool thread), and the
 * work is waiting on the network.
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { Backoff, ErrorCodes, logger, type StreamGap } from '@edgecap/core';
import type { DataSyncClient, Gap, UploadResponse__Output } from '@edgecap/proto';
import { classifyStatus, statusName, type FailureKind } from './errors.js';
import { DEFAULT_CHUNK_BYTES, addressesOf, callMetadata, checkTarget, makeClient, type IngestTarget } from './target.js';
import { DEFAULT_STALL_TIMEOUT_MS, type LinkMonitor, type RateLimitShare } from './link.js';
import { LinkedCall, linkFor } from './upload.js';
import { captureMeta } from './header.js';
import { DEFAULT_PROBE_INTERVAL_MS, type FileSyncedEvent, type SyncErrorEvent, type SyncResult, type SyncStats } from './engine.js';
import { RoundScheduler, countAcked, nextTickDelay, type UploadTally } from './scheduler.js';

const log = logger('sync.memory');

/** A sealed in-memory capture file (see @edgecap/capture MemoryStore). */
export interface MemoryFile {
  id: string;
  path: string;
  header: { kind: string; name: string; method: string; type: string; tags: string[]; part_id?: string };
  bytes: Uint8Array;
  sealedAtMs: number;
}

export type MemoryFileGap = StreamGap;

/** Where memory-mode sync gets its files and gaps (the MemoryStore implements it). */
export interface MemoryFileSource {
  pending(): MemoryFile[];
  take(id: string): boolean;
  untake(id: string): void;
  release(id: string): void;
  /** The ingest refused the bytes: release them and explain their seq range as a gap. */
  reject(id: string): void;
  unreportedGaps(): MemoryFileGap[];
  markGapsReported(gaps: readonly MemoryFileGap[]): void;
}

/** Gaps per ReportGaps call: well under the ingest's default bound (10,000). */
const GAPS_PER_CALL = 1000;

export interface MemorySyncOptions {
  source: MemoryFileSource;
  ingest: IngestTarget;
  partId: string;
  tags: string[];
  intervalMs: number;
  probeIntervalMs?: number;
  /** Uploads in flight at once (default 4). */
  concurrency?: number;
  chunkBytes?: number;
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  probeTimeoutMs?: number;
  /** sync_stall_timeout_ms: an upload with no acknowledged progress for this long is cut (default 60000). */
  stallTimeoutMs?: number;
  /** sync_max_bytes_per_second: the edge-wide pace (link.ts), shared with the disk engine of additional_sync_paths. */
  rateLimit?: RateLimitShare;
}

type Outcome = { ok: true; status: 'committed' | 'already_have' } | { ok: false; kind: FailureKind; code?: number; message: string };

/** Sync errors of memory mode carry a stable code like the disk engine's. */
export class MemorySyncError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MemorySyncError';
  }
}

export class MemorySyncEngine extends EventEmitter {
  private readonly link: Backoff;
  private client: DataSyncClient | undefined;
  /** The client's acknowledged progress (link.ts): bounds what is queued ahead of a slow link. */
  private wire: LinkMonitor | undefined;
  private addrIdx = 0;
  /** One round at a time; the timer of scheduled rounds (shared with SyncEngine). */
  private readonly sched: RoundScheduler;
  private offline = false;
  private lastProbeAt = 0;
  private lastError: string | undefined;
  private gateFn: (() => boolean) | undefined;
  private readonly calls = new Set<grpc.ClientWritableStream<unknown> | grpc.ClientUnaryCall>();
  private readonly st: UploadTally = { uploadedFiles: 0, uploadedBytes: 0, alreadyHave: 0, failedFiles: 0 };

  constructor(readonly opts: MemorySyncOptions) {
    super();
    checkTarget(opts.ingest);
    if (opts.ingest.protocol === 'viam') throw new MemorySyncError(ErrorCodes.CONFIG_INVALID, 'storage "memory" syncs over the edgecap protocol only');
    this.link = new Backoff({ ...opts.backoff });
    this.sched = new RoundScheduler({
      tick: () => this.tick(),
      nextDelay: () => nextTickDelay({ intervalMs: this.opts.intervalMs, now: Date.now(), backoffUntil: this.link.nextAttemptAt, offline: this.offline, lastProbeAt: this.lastProbeAt, probeIntervalMs: this.probeIntervalMs }),
      onError: (e) => log.error({ err: e }, 'memory sync round failed'),
    });
  }

  private get probeIntervalMs(): number {
    return this.opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
  }

  private mainClient(): DataSyncClient {
    this.client ??= makeClient(this.opts.ingest, this.addrIdx, { 'grpc.use_local_subchannel_pool': 1 });
    return this.client;
  }

  private dropClient(): void {
    this.wire?.close();
    this.wire = undefined;
    this.client?.close();
    this.client = undefined;
  }

  async start(): Promise<void> {
    this.sched.start(Math.min(this.opts.intervalMs, 100));
  }

  /** Stop scheduling; in-flight calls are cancelled (their files stay held). */
  async stop(): Promise<void> {
    this.sched.stop();
    for (const c of this.calls) c.cancel();
    await this.sched.settled();
    this.dropClient();
  }

  setGate(fn: (() => boolean) | undefined): void {
    this.gateFn = fn;
  }

  syncNow(): Promise<SyncResult> {
    return this.exclusive(() => this.round(true));
  }

  stats(): SyncStats {
    const files = this.opts.source.pending();
    const s: SyncStats = {
      ...this.st,
      pendingFiles: files.length,
      pendingBytes: files.reduce((a, f) => a + f.bytes.length, 0),
      failedOnDisk: 0,
      offline: this.offline,
      running: this.sched.running,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    if (this.link.nextAttemptAt > 0) s.nextRetryAt = this.link.nextAttemptAt;
    return s;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.sched.exclusive(fn);
  }

  /** One scheduled tick: a round when the gate is open and the backoff allows, or the offline probe. */
  private async tick(): Promise<void> {
    if (this.gateFn && !this.gateFn()) return;
    if (this.sched.busy) return;
    if (this.link.ready()) await this.exclusive(() => this.round(false));
    else if (this.offline && Date.now() >= this.lastProbeAt + this.probeIntervalMs) await this.exclusive(() => this.round(true));
  }

  private unary(method: 'Health' | 'ReportGaps', req: object, timeoutMs: number): Promise<grpc.ServiceError | undefined> {
    const client = this.mainClient() as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall>;
    if (method === 'Health') this.lastProbeAt = Date.now();
    return new Promise((resolve) => {
      const call = client[method]!.call(this.client, req, callMetadata(this.opts.ingest), { deadline: Date.now() + timeoutMs }, (err) => {
        this.calls.delete(call);
        resolve(err ?? undefined);
      });
      this.calls.add(call);
    });
  }

  private failure(kind: FailureKind, code: number | undefined, why: string, res: SyncResult): void {
    this.link.fail();
    this.offline = kind === 'link';
    if (kind === 'link') {
      this.dropClient();
      const n = addressesOf(this.opts.ingest).length;
      if (n > 1) this.addrIdx = (this.addrIdx + 1) % n;
    }
    const message = `ingest server ${kind === 'link' ? 'unreachable' : kind === 'auth' ? 'refused our credentials' : 'could not take the upload'} (${statusName(code)}): ${why}`;
    const errCode = kind === 'auth' ? ErrorCodes.UNAUTHENTICATED : ErrorCodes.UNAVAILABLE;
    this.lastError = message;
    res.errors.push(message);
    log.warn({ code: errCode }, message);
    this.emit('sync-error', { message, code: errCode, nextRetryAt: this.link.nextAttemptAt } satisfies SyncErrorEvent);
  }

  private async round(force: boolean): Promise<SyncResult> {
    const res: SyncResult = { uploaded: 0, alreadyHad: 0, bytes: 0, failed: 0, deferred: 0, errors: [] };
    if (!force && !this.link.ready()) return res;
    const src = this.opts.source;
    const hErr = await this.unary('Health', {}, this.opts.probeTimeoutMs ?? 5000);
    if (hErr) {
      this.failure(classifyStatus(hErr.code), hErr.code, hErr.details || hErr.message, res);
      res.deferred = src.pending().length;
      return res;
    }
    if (this.offline) {
      this.link.succeed();
      this.offline = false;
    }
    // Gaps first: a file dropped for memory is explained before anything after it arrives. In
    // batches: the ingest bounds the gaps of one call (limits.maxGapsPerReport).
    const all = src.unreportedGaps();
    for (let i = 0; i < all.length; i += GAPS_PER_CALL) {
      const gaps = all.slice(i, i + GAPS_PER_CALL);
      const wire: Gap[] = gaps.map((g) => ({ part_id: this.opts.partId, resource_kind: g.kind, resource_name: g.name, method: g.method, from_seq: g.from_seq, to_seq: g.to_seq, reason: g.reason, time_us: g.time_us }));
      const err = await this.unary('ReportGaps', { gaps: wire }, 10_000);
      if (!err) {
        src.markGapsReported(gaps);
        continue;
      }
      const kind = classifyStatus(err.code);
      if (kind === 'link' || kind === 'auth') {
        this.failure(kind, err.code, err.details || err.message, res);
        res.deferred = src.pending().length;
        return res;
      }
      res.errors.push(`ReportGaps failed (${statusName(err.code)}): ${err.details}`);
      break;
    }
    const queue = src.pending();
    let linkDown = false;
    const runner = async (): Promise<void> => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        if (linkDown || !src.take(f.id)) {
          if (linkDown) res.deferred++;
          continue;
        }
        const out = await this.upload(f);
        if (out.ok) {
          src.release(f.id);
          this.link.succeed();
          this.offline = false;
          countAcked(res, this.st, out.status, f.bytes.length);
          this.emit('file-synced', { path: f.path, fileId: f.id, status: out.status, bytes: f.bytes.length } satisfies FileSyncedEvent);
        } else if (out.kind === 'rejected') {
          // A verdict about the bytes: keeping them would block the memory for good; their
          // range is reported as a 'rejected' gap (next round), so nothing goes missing unexplained.
          src.reject(f.id);
          res.failed++;
          this.st.failedFiles++;
          log.error({ file: f.id, reason: out.message }, 'ingest rejected an in-memory capture file; dropped');
        } else {
          src.untake(f.id);
          res.deferred++;
          if (!linkDown && (out.kind === 'link' || out.kind === 'auth' || out.kind === 'server')) {
            linkDown = true;
            this.failure(out.kind, out.code, out.message, res);
          } else res.errors.push(`${f.id}: ${out.message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: this.opts.concurrency ?? 4 }, runner));
    return res;
  }

  /**
   * One Upload call from memory: metadata (with the file's own id, so dedup is the disk mode's),
   * then chunks, each paced and kept within the link's window as a disk file's are (upload.ts).
   * No fixed deadline: the call is cut only after stallTimeoutMs without progress.
   */
  private upload(f: MemoryFile): Promise<Outcome> {
    const chunk = this.opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const size = f.bytes.length;
    const meta = {
      ...captureMeta(f.header, f.id, f.path, this.opts),
      size,
      sha256: crypto.createHash('sha256').update(f.bytes).digest(),
      mtime_ms: f.sealedAtMs,
    };
    const stallMs = this.opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const client = this.mainClient();
    const wire = (this.wire ??= linkFor(client, this.opts.ingest, stallMs));
    const bytes = Buffer.from(f.bytes.buffer, f.bytes.byteOffset, size);
    return new Promise<Outcome>((resolve) => {
      const lc = new LinkedCall(wire, stallMs, () => {
        done({ ok: false, kind: 'link', code: grpc.status.DEADLINE_EXCEEDED, message: `upload stalled: no progress for ${stallMs} ms (sync_stall_timeout_ms); the connection is dropped and the file retried` });
        call.cancel();
        if (this.client === client) this.dropClient();
      });
      const done = (o: Outcome): void => {
        if (!lc.settle()) return;
        this.calls.delete(call);
        resolve(o);
      };
      const call = client.Upload(callMetadata(this.opts.ingest), (err: grpc.ServiceError | null, r?: UploadResponse__Output) => {
        if (err) return done({ ok: false, kind: classifyStatus(err.code), code: err.code, message: err.details || err.message });
        if (r?.status === 'UPLOAD_STATUS_COMMITTED') return done({ ok: true, status: 'committed' });
        if (r?.status === 'UPLOAD_STATUS_ALREADY_HAVE') return done({ ok: true, status: 'already_have' });
        done({ ok: false, kind: 'server', message: `unexpected upload response status ${String(r?.status)}` });
      });
      lc.call = call;
      this.calls.add(call);
      call.on('error', () => undefined); // reported through the callback
      void (async () => {
        await lc.write({ metadata: meta }, 0);
        // views of memory the store keeps unchanged until release: no copy per chunk
        await lc.sendSpan(bytes, 0, size, { chunk, cap: this.opts.rateLimit, preframed: false });
        if (lc.settled) return;
        call.end();
        // the tail's acknowledgement is progress for the watchdog while it drains
        await wire.drained(lc.cancelled);
      })();
    });
  }
}
