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
import * as grpc from '@grpc/grpc-js';
import { logger } from '@edgecap/core';
import { RequestRejected } from './errors.js';
import type { IngestLimits } from './settings.js';

const log = logger('ingest.limits');


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
