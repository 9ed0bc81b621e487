/**
 * Bounds on everything a client controls. Every limit is an option with a default sized from
 * the process's fd limit; every refusal the server causes itself (full, busy, out of fds or
 * disk) is a retryable status (RESOURCE_EXHAUSTED / UNAVAILABLE), never INTERNAL.
 *
 *   connection ─► count ≤ maxConnections (the oldest connection with no call is closed to make
 *                 room; idle connections close after idleConnectionMs)
 *   Upload     ─► slot: ≤ maxConcurrentUploads in all, ≤ maxUploadsPerConnection, ≤ maxUploadsPerKey
 *              ─► metadata within firstMessageMs; then ≥ minBytesPerSecond over every
 *                 progressWindowMs (a slow, moving link passes; a stalled one is cut)
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import { RequestRejected } from './errors.js';

const log = logger('ingest.limits');

export interface IngestLimits {
  /** Open connections (TLS sessions) at once. */
  maxConnections: number;
  /** A connection with no call for this long is closed. */
  idleConnectionMs: number;
  /** Uploads in progress at once, all callers together. */
  maxConcurrentUploads: number;
  /** Uploads in progress on one connection. */
  maxUploadsPerConnection: number;
  /** Uploads in progress for one key (device key, or all fleet-key callers together). */
  maxUploadsPerKey: number;
  /** Time from the call's start to its metadata message. */
  firstMessageMs: number;
  /** Progress an upload must make: at least this many bytes per second ... */
  minBytesPerSecond: number;
  /** ... measured over windows of this length. */
  progressWindowMs: number;
  /** Tags per upload, and bytes per tag. */
  maxTags: number;
  maxTagBytes: number;
  /** Bytes of part id, resource kind/name, method and source. */
  maxNameBytes: number;
  /** Gaps per ReportGaps call. */
  maxGapsPerReport: number;
  /** Distinct seq runs one capture file may hold (an honest writer makes one per file). */
  maxRangesPerFile: number;
  /** viam uploads: bounding boxes + classifications one item may carry (stored and exported with it). */
  maxAnnotationsPerItem: number;
  /** UploadBatch: files in one call (one upload slot holds them all) ... */
  maxBatchFiles: number;
  /** ... and their bytes, declared and received (held in memory until the group commit). */
  maxBatchBytes: number;
}

/** The process's soft limit on open files (Linux /proc; 1024 when unknown). */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

export function defaultLimits(fdLimit = openFileLimit()): IngestLimits {
  // Connections and uploads (one staging fd each) share the fd budget, with room left for
  // storage, logs and the database.
  const budget = Math.max(64, fdLimit - 64);
  return {
    // ~80–100 KB of RSS per open TLS/HTTP2 connection (Node 20–26): 8,000 keep a node under 1 GiB.
    maxConnections: Math.max(16, Math.min(8_000, Math.floor(budget * 0.5))),
    idleConnectionMs: 5 * 60_000,
    maxConcurrentUploads: Math.max(8, Math.min(1024, Math.floor(budget * 0.25))),
    maxUploadsPerConnection: 64,
    maxUploadsPerKey: 128,
    firstMessageMs: 10_000,
    minBytesPerSecond: 512,
    progressWindowMs: 60_000,
    maxTags: 64,
    maxTagBytes: 256,
    maxNameBytes: 256,
    maxGapsPerReport: 10_000,
    maxRangesPerFile: 10_000,
    maxAnnotationsPerItem: 10_000,
    // The edge sends ≤ 256 files / 1 MiB per call (sync/src/batch.ts), fewer after a refusal: a
    // slot's memory stays bounded (maxConcurrentUploads × 8 MiB at most).
    maxBatchFiles: 256,
    maxBatchBytes: 8 * 1024 * 1024,
  };
}

export function resolveLimits(partial: Partial<IngestLimits> | undefined): IngestLimits {
  const out = { ...defaultLimits(), ...(partial ?? {}) };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `limits.${k}: ${String(v)} is not a positive number`);
  }
  return out;
}

/** `name=value` flags (`--limit maxConcurrentUploads=512`) as limit options. */
export function parseLimitFlags(flags: readonly string[]): Partial<IngestLimits> {
  const known = defaultLimits();
  const out: Partial<IngestLimits> = {};
  for (const f of flags) {
    const m = /^([A-Za-z]+)=(\d+(?:\.\d+)?)$/.exec(f);
    if (!m || !(m[1]! in known)) throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `${JSON.stringify(f)}: use name=value with name one of ${Object.keys(known).join(', ')}`);
    out[m[1] as keyof IngestLimits] = Number(m[2]);
  }
  return out;
}

export function busy(message: string): RequestRejected {
  return new RequestRejected(grpc.status.RESOURCE_EXHAUSTED, message);
}

/** Upload slots by connection and key; `acquire` returns the release function or throws RESOURCE_EXHAUSTED. */
export class UploadSlots {
  private total = 0;
  private readonly byConn = new Map<string, number>();
  private readonly byKey = new Map<string, number>();

  constructor(private readonly l: IngestLimits) {}

  get inUse(): number {
    return this.total;
  }

  acquire(conn: string, key: string): () => void {
    const c = this.byConn.get(conn) ?? 0;
    const k = this.byKey.get(key) ?? 0;
    if (this.total >= this.l.maxConcurrentUploads) throw busy(`the server has ${this.total} uploads in progress (limit ${this.l.maxConcurrentUploads}): retry later`);
    if (c >= this.l.maxUploadsPerConnection) throw busy(`this connection has ${c} uploads in progress (limit ${this.l.maxUploadsPerConnection})`);
    if (k >= this.l.maxUploadsPerKey) throw busy(`this key has ${k} uploads in progress (limit ${this.l.maxUploadsPerKey})`);
    this.total++;
    this.byConn.set(conn, c + 1);
    this.byKey.set(key, k + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      dec(this.byConn, conn);
      dec(this.byKey, key);
    };
  }
}

function dec(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 1) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}

/**
 * Watches one upload: fails it (DEADLINE_EXCEEDED, retryable) when its metadata does not come
 * within firstMessageMs or when a window passes with less than the minimum progress.
 */
export class ProgressWatch {
  private gotMetadata = false;
  private windowBytes = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(l: IngestLimits, fail: (e: RequestRejected) => void, now = Date.now) {
    const started = now();
    let windowStart = started;
    const need = Math.ceil((l.minBytesPerSecond * l.progressWindowMs) / 1000);
    const tick = Math.min(1000, l.firstMessageMs, l.progressWindowMs);
    this.timer = setInterval(() => {
      const t = now();
      if (!this.gotMetadata) {
        if (t - started >= l.firstMessageMs) fail(new RequestRejected(grpc.status.DEADLINE_EXCEEDED, `no upload metadata within ${l.firstMessageMs} ms of the call's start`));
        return;
      }
      if (t - windowStart < l.progressWindowMs) return;
      if (this.windowBytes < need) {
        fail(new RequestRejected(grpc.status.DEADLINE_EXCEEDED, `upload stalled: ${this.windowBytes} bytes in the last ${t - windowStart} ms (minimum ${l.minBytesPerSecond} bytes/s)`));
        return;
      }
      this.windowBytes = 0;
      windowStart = t;
    }, tick);
    this.timer.unref();
    this.metadataAt = () => {
      if (this.gotMetadata) return;
      this.gotMetadata = true;
      windowStart = now();
    };
  }

  /** The metadata arrived: from now on, progress is measured (later calls do nothing). */
  readonly metadataAt: () => void;

  bytes(n: number): void {
    this.windowBytes += n;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

interface SessionLike {
  destroyed: boolean;
  destroy(): void;
  on(ev: 'stream', cb: (s: { once(ev: 'close' | 'finish', cb: () => void): void }) => void): void;
  once(ev: 'close', cb: () => void): void;
}

/**
 * Caps open HTTP/2 sessions: at the cap, a new session first closes the oldest one with no call
 * in progress (idle, abandoned, or holding only answered calls); when every session has a call in
 * progress, the new one is refused. An honest edge that reconnects therefore always gets in past idle hoarders.
 */
export class SessionCap {
  private readonly open = new Map<SessionLike, { streams: number }>();
  closedIdle = 0;
  refused = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.open.size;
  }

  add(s: SessionLike): void {
    if (this.open.size >= this.max) {
      let victim: SessionLike | undefined;
      for (const [o, st] of this.open) {
        if (st.streams === 0) {
          victim = o;
          break;
        }
      }
      if (victim) {
        this.open.delete(victim);
        this.closedIdle++;
        victim.destroy();
      } else {
        this.refused++;
        log.warn({ open: this.open.size }, 'connection refused: every connection has a call in progress');
        s.destroy();
        return;
      }
    }
    const st = { streams: 0 };
    this.open.set(s, st);
    s.on('stream', (stream) => {
      st.streams++;
      // A call is over once the server has answered it ('finish': its side is ended), even if
      // the client never ends its own side (a refused upload whose sender keeps the stream).
      let open = true;
      const done = (): void => {
        if (!open) return;
        open = false;
        st.streams--;
      };
      stream.once('finish', done);
      stream.once('close', done);
    });
    s.once('close', () => this.open.delete(s));
  }
}

/**
 * Errors of the server's own resources as retryable statuses: out of fds or memory →
 * RESOURCE_EXHAUSTED; disk full, quota, read-only or failing disk → UNAVAILABLE.
 */
export function statusOfSystemError(err: unknown): grpc.status | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EMFILE':
    case 'ENFILE':
    case 'ENOMEM':
    case 'EAGAIN':
      return grpc.status.RESOURCE_EXHAUSTED;
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EROFS':
    case 'EIO':
    case 'EBUSY':
      return grpc.status.UNAVAILABLE;
    default:
      return undefined;
  }
}
