import { MongoClient } from 'mongodb';
import { EdgecapError, ErrorCodes, logger } from '@edgecap/core';
import type { CaptureFileHeader, Reading } from '@edgecap/format';
import { toDocument, type ReadingDocument } from './document.js';

/**
 * Direct capture of tabular readings into MongoDB, never in the way of disk capture:
 *
 *   add(header, readings) ──► bounded queue ──(batchSize reached | flush timer)──► one insertMany
 *        (sync, O(n))          full → dropped++        in flight at a time, ordered:false,
 *                                                       bounded by insertTimeoutMs → inserted/failed
 *
 * `add()` never awaits the database. A slow or dead server fills the queue and further
 * readings are dropped and counted; failed batches are counted and logged (rate-limited),
 * not retried: disk capture and sync remain the system of record.
 */
export interface InsertManyTarget {
  insertMany(docs: ReadingDocument[], options: { ordered: false }): Promise<{ insertedCount: number }>;
}

export const MONGO_DEFAULTS = {
  database: 'edgecap',
  collection: 'readings',
  batchSize: 500,
  flushIntervalMs: 1000,
  maxQueue: 10_000,
  insertTimeoutMs: 10_000,
  serverSelectionTimeoutMs: 5000,
  closeTimeoutMs: 5000,
} as const;

export interface MongoSinkOptions {
  uri: string;
  database?: string;
  collection?: string;
  batchSize?: number;
  flushIntervalMs?: number;
  /** Documents waiting (not counting the batch in flight); beyond it readings are dropped. */
  maxQueue?: number;
  /** A batch not acknowledged within this is counted failed and the sink moves on. */
  insertTimeoutMs?: number;
  serverSelectionTimeoutMs?: number;
  partId: string;
  tags: string[];
  /** Injected collection-like target (tests); default: the `mongodb` driver's collection. */
  target?: InsertManyTarget;
}

export interface MongoSinkStats {
  inserted: number;
  failed: number;
  dropped: number;
  /** Binary readings ignored (only tabular data goes to MongoDB). */
  skippedBinary: number;
  queued: number;
  inFlight: number;
  batches: number;
  failedBatches: number;
  lastError?: string;
}

export class MongoSinkError extends EdgecapError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(ErrorCodes.UNAVAILABLE, message, options);
    this.name = 'MongoSinkError';
  }
}

const ERROR_LOG_INTERVAL_MS = 30_000;

export class MongoSink {
  private readonly log = logger('mongo');
  private readonly batchSize: number;
  private readonly maxQueue: number;
  private readonly insertTimeoutMs: number;
  private readonly meta: { partId: string; tags: readonly string[] };
  private queue: ReadingDocument[] = [];
  private inFlight: Promise<void> | undefined;
  private inFlightCount = 0;
  private target: InsertManyTarget | undefined;
  private client: MongoClient | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private lastErrorLogAt = Number.NEGATIVE_INFINITY;
  private suppressedErrors = 0;
  private readonly s: MongoSinkStats = { inserted: 0, failed: 0, dropped: 0, skippedBinary: 0, queued: 0, inFlight: 0, batches: 0, failedBatches: 0 };

  constructor(private readonly o: MongoSinkOptions) {
    this.batchSize = Math.max(1, o.batchSize ?? MONGO_DEFAULTS.batchSize);
    this.maxQueue = Math.max(1, o.maxQueue ?? MONGO_DEFAULTS.maxQueue);
    this.insertTimeoutMs = o.insertTimeoutMs ?? MONGO_DEFAULTS.insertTimeoutMs;
    this.meta = { partId: o.partId, tags: [...o.tags] };
    this.target = o.target;
    this.timer = setInterval(() => this.kick(), o.flushIntervalMs ?? MONGO_DEFAULTS.flushIntervalMs);
    this.timer.unref();
  }

  /** Queue tabular readings (never waits for MongoDB). Returns how many were queued. */
  add(header: CaptureFileHeader, readings: readonly Reading[]): number {
    if (header.type !== 'tabular') {
      this.s.skippedBinary += readings.length;
      return 0;
    }
    if (this.closed) {
      this.s.dropped += readings.length;
      return 0;
    }
    let queued = 0;
    for (const r of readings) {
      if (this.queue.length >= this.maxQueue) {
        this.s.dropped += readings.length - queued;
        break;
      }
      this.queue.push(toDocument(header, r, this.meta));
      queued++;
    }
    if (this.queue.length >= this.batchSize) this.kick();
    return queued;
  }

  stats(): MongoSinkStats {
    return { ...this.s, queued: this.queue.length, inFlight: this.inFlightCount };
  }

  /** Send everything queued; resolves when the queue is empty (failures are counted, not thrown). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight) {
      this.kick();
      if (this.inFlight) await this.inFlight;
    }
  }

  /** Stop the timer, flush (bounded by timeoutMs; what is left is counted dropped) and close the client. */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    let t: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      t = setTimeout(() => resolve('timeout'), opts.timeoutMs ?? MONGO_DEFAULTS.closeTimeoutMs);
    });
    const res = await Promise.race([this.flush().then(() => 'done' as const), timedOut]);
    clearTimeout(t);
    if (res === 'timeout') {
      this.s.dropped += this.queue.length;
      this.queue = [];
      this.log.warn({ stats: this.stats() }, 'mongo sink closed before everything was sent');
    }
    const c = this.client;
    this.client = undefined;
    if (c) await c.close(true).catch(() => undefined);
  }

  private getTarget(): InsertManyTarget {
    if (!this.target) {
      this.client = new MongoClient(this.o.uri, {
        serverSelectionTimeoutMS: this.o.serverSelectionTimeoutMs ?? MONGO_DEFAULTS.serverSelectionTimeoutMs,
      });
      this.target = this.client
        .db(this.o.database ?? MONGO_DEFAULTS.database)
        .collection<ReadingDocument>(this.o.collection ?? MONGO_DEFAULTS.collection) as unknown as InsertManyTarget;
    }
    return this.target;
  }

  /** Start one batch if none is in flight. */
  private kick(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.batchSize);
    this.inFlightCount = batch.length;
    this.inFlight = this.send(batch).finally(() => {
      this.inFlight = undefined;
      this.inFlightCount = 0;
      if (this.queue.length >= this.batchSize || (this.closed && this.queue.length > 0)) setImmediate(() => this.kick());
    });
  }

  private async send(batch: ReadingDocument[]): Promise<void> {
    this.s.batches++;
    let t: NodeJS.Timeout | undefined;
    try {
      const target = this.getTarget();
      const timeout = new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new MongoSinkError(`insertMany not acknowledged within ${this.insertTimeoutMs} ms`)), this.insertTimeoutMs);
        t.unref();
      });
      const res = await Promise.race([target.insertMany(batch, { ordered: false }), timeout]);
      this.s.inserted += res.insertedCount;
      this.s.failed += batch.length - res.insertedCount;
    } catch (e) {
      // A bulk write error still reports how many documents made it (ordered:false).
      const partial = Number((e as { insertedCount?: unknown }).insertedCount ?? (e as { result?: { insertedCount?: unknown } }).result?.insertedCount ?? 0);
      const ok = Number.isFinite(partial) ? Math.min(Math.max(0, partial), batch.length) : 0;
      this.s.inserted += ok;
      this.s.failed += batch.length - ok;
      this.s.failedBatches++;
      this.s.lastError = (e as Error).message ?? String(e);
      this.logError(e, batch.length - ok);
    } finally {
      clearTimeout(t);
    }
  }

  private logError(e: unknown, lost: number): void {
    const now = Date.now();
    if (now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    this.lastErrorLogAt = now;
    this.log.error(
      { err: (e as Error).message, lost, suppressed: this.suppressedErrors, failed: this.s.failed, dropped: this.s.dropped },
      'mongo insertMany failed; readings not inserted (disk capture unaffected)',
    );
    this.suppressedErrors = 0;
  }
}
