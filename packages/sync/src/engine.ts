/**
 * The sync engine: control and scanning on the caller's thread, uploads in a piscina pool.
 *
 *            ┌──────────────── SyncEngine (main thread) ────────────────┐
 *   timer ─► │ gate? ─► link backoff ready? ─► Health probe ─► ReportGaps │ link-health.ts
 *  syncNow ─►│      ─► scan capture dir + additional_sync_paths          │ prepare.ts
 *            │      ─► per file: id (header | fileIdFor), checkpoint,    │
 *            │         per-file nextRetryAt, claimUpload (vs janitor)    │
 *            │      ─► dispatch: ≤ threads × 4 big files, × 16 small ─┐  │ dispatch.ts
 *            └────────────────────────────────────────────────│─────────┘
 *                                                             ▼
 *                  piscina worker threads (niceIncrement below the process: capture first):
 *                  every piece of bytes taken from one shared pace (link.ts) whose rate is the
 *                  user's cap and, with captureLateness, capture-first.ts's (one tick a second)
 *                  uploaderFor(task).upload() = one attempt, no sleeping (uploader.ts: edgecap | viam)
 *                  read + sha256 ─► Upload(metadata, chunk...) ─► COMMITTED | ALREADY_HAVE | status
 *                  small files (edgecap, ≤ SMALL_FILE_BYTES): ONE task per batch (batch.ts, ≤ 256 files /
 *                  1 MiB) ─► UploadBatch([metadata, chunk]...) ─► a result per file, settled one by one
 *                  (UNIMPLEMENTED: older ingest ─► one file per call from then on)
 *                                                             │
 *            ┌────────────────────────────────────────────────▼─────────┐
 *            │ ok       ─► unchanged since read? ─► unlink ─► forget     │ settle.ts
 *            │                      └ changed ─► keep, new id next round │
 *            │ link/auth ─► ONE backoff for everything; rest of round deferred │ (link-health.ts)
 *            │ server   ─► the same, plus the file's own backoff (unbounded) │
 *            │ rejected ─► move to <stateDir>/failed/<rel> + .reason      │ (failed.ts)
 *            │ file/local ─► per-file attempts/nextRetryAt               │
 *            └──────────────────────────────────────────────────────────┘
 *
 *   This file is the round's control: start/stop, the gate, one round's order (probe, walk,
 *   dispatch, release of unsent claims), the lease renewal and the stall watchdog; each part
 *   named on the right does one job and owns its state. Options, results and events: types.ts.
 *
 *   Rounds are scheduled by RoundScheduler (scheduler.ts, shared with MemorySyncEngine). Claims
 *   and forgets are batched (one LMDB transaction per CLAIM_BATCH_FILES / FORGET_BATCH_MS); up to
 *   SMALL_UPLOADS_PER_THREAD small files per thread are in flight, UPLOADS_PER_THREAD big ones.
 *
 *   offline (the last failure was `link`): every probeIntervalMs one Health call, whatever the
 *   backoff says; an answer resets the backoff and a round starts at once. failed/ is only for
 *   verdicts about the bytes; retryFailed() (`edgecap sync --retry-failed`) moves files back.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { EdgecapError, ErrorCodes, logger, systemClock, type Clock } from '@edgecap/core';
import { StateStore } from '@edgecap/store';
import { SyncError } from './errors.js';
import { checkTarget } from './target.js';
import { CaptureFirst, WINDOW_MS } from './capture-first.js';
import { createRateLimit, type RateLimitShare } from './link.js';
import { uploaderFor } from './uploader.js';
import { RoundScheduler, nextTickDelay } from './scheduler.js';
import { FailedDir, type RetryFailedResult } from './failed.js';
import { LinkHealth } from './link-health.js';
import { Backlog, type Work } from './prepare.js';
import { Dispatcher, UPLOADS_PER_THREAD } from './dispatch.js';
import { Settler } from './settle.js';
import type { Notices, SyncErrorEvent, SyncOptions, SyncResult, SyncStats } from './types.js';

export { type RetryFailedResult } from './failed.js';
export { listFailed } from '@edgecap/core';
export type { SyncOptions, SyncResult, SyncStats, FileSyncedEvent, SyncErrorEvent, FileFailedEvent } from './types.js';
export { SYNC_NICE_INCREMENT, UPLOADS_PER_THREAD, SMALL_UPLOADS_PER_THREAD, SMALL_FILE_BYTES, BATCHES_PER_THREAD } from './dispatch.js';
export { CLAIM_BATCH_FILES, CLAIM_BATCH_BYTES } from './prepare.js';

const log = logger('sync');

/** Default sync_probe_interval_ms. */
export const DEFAULT_PROBE_INTERVAL_MS = 5000;

function emptyResult(): SyncResult {
  return { uploaded: 0, alreadyHad: 0, bytes: 0, failed: 0, deferred: 0, errors: [] };
}

export class SyncEngine extends EventEmitter {
  readonly opts: SyncOptions;
  readonly runId: string;
  private readonly clock: Clock;
  private store: StateStore | undefined;
  /** Files this engine holds an upload lease on (claimed, not yet settled): renewed while the round runs. */
  private readonly leased = new Set<string>();
  /** One round at a time; the timer of scheduled rounds (shared with MemorySyncEngine). */
  private readonly sched: RoundScheduler;
  private abort: AbortController | undefined;
  private gateFn: (() => boolean) | undefined;
  /** The embedder's events and stats().lastError, as every part reports them. */
  private readonly notices: Notices;
  /** The ONE connectivity backoff, the probes and their channel (link-health.ts). */
  private readonly health: LinkHealth;
  /** `<stateDir>/failed/`: files with a verdict (failed.ts). */
  private readonly failed: FailedDir;
  /** Which files go out, claimed, and the pending counts (prepare.ts). */
  private readonly backlog: Backlog;
  /** What an upload's outcome does to its file, and the upload tally (settle.ts). */
  private readonly settler: Settler;
  /** The upload pool and the round's runners (dispatch.ts). */
  private readonly dispatch: Dispatcher;
  /** Sync's pace follows capture's punctuality (capture-first.ts), if the embedder gave capture's lateness. */
  private readonly captureFirst: CaptureFirst | undefined;

  constructor(opts: SyncOptions) {
    super();
    checkTarget(opts.ingest);
    if (!Number.isFinite(opts.threads) || opts.threads < 1) throw new SyncError('file', `threads must be >= 1 (got ${opts.threads})`);
    this.opts = opts;
    this.runId = opts.runId ?? randomUUID();
    this.clock = opts.clock ?? systemClock;
    const random = opts.random ?? Math.random;
    // The wire protocol's side of things the engine needs (probe, gaps); uploads use it in the pool.
    const uploader = uploaderFor({ target: opts.ingest });
    this.sched = new RoundScheduler({
      tick: async () => {
        await this.runScheduled();
      },
      nextDelay: () =>
        nextTickDelay({ intervalMs: this.opts.intervalMs, now: this.clock.now(), backoffUntil: this.health.link.nextAttemptAt, offline: this.health.offline, lastProbeAt: this.health.lastProbeAt, probeIntervalMs: this.health.probeIntervalMs }),
      onError: (e) => this.roundFailed(e),
    });
    const probeIntervalMs = opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    if (!Number.isFinite(probeIntervalMs) || probeIntervalMs <= 0) throw new SyncError('file', `probeIntervalMs must be > 0 (got ${opts.probeIntervalMs})`);
    if (opts.stallTimeoutMs !== undefined && !(opts.stallTimeoutMs > 0)) throw new SyncError('file', `stallTimeoutMs must be > 0 (got ${opts.stallTimeoutMs})`);
    // The pace's shared bucket (bandwidth cap, capture first): the same memory in every pool thread (link.ts).
    let rateLimit: RateLimitShare | undefined;
    if (opts.maxBytesPerSecond !== undefined && !(opts.maxBytesPerSecond > 0)) throw new SyncError('file', `maxBytesPerSecond must be > 0 (got ${opts.maxBytesPerSecond})`);
    // capture first sets the pace's rate: it would overwrite a cap another engine shares
    if (opts.rateLimit && opts.captureLateness) throw new SyncError('file', 'rateLimit (a pace shared with another engine) and captureLateness cannot be combined');
    if (opts.rateLimit) rateLimit = opts.rateLimit;
    else if (opts.maxBytesPerSecond !== undefined || opts.captureLateness) rateLimit = createRateLimit(opts.maxBytesPerSecond ?? 0);
    this.captureFirst = opts.captureLateness && rateLimit ? new CaptureFirst(rateLimit, opts.captureLateness, opts.maxBytesPerSecond ?? 0) : undefined;
    this.notices = { events: this, lastError: undefined };
    this.health = new LinkHealth({ opts, clock: this.clock, random, uploader, probeIntervalMs, notices: this.notices, signal: () => this.abort?.signal });
    this.failed = new FailedDir(opts.stateDir);
    const store = (): StateStore | undefined => this.store;
    this.backlog = new Backlog({ opts, clock: this.clock, runId: this.runId, store, leased: this.leased, moveToFailed: (s, c, reason) => this.settler.moveToFailed(s, c, reason) });
    this.settler = new Settler({ opts, clock: this.clock, random, runId: this.runId, store, health: this.health, backlog: this.backlog, failed: this.failed, notices: this.notices });
    this.dispatch = new Dispatcher({ opts, clock: this.clock, runId: this.runId, uploader, rateLimit, health: this.health, settler: this.settler, leased: this.leased });
  }

  // ── lifecycle ────────────────────────────────────────────────────────────────

  private open(): StateStore {
    if (!this.store) {
      this.store = new StateStore(this.opts.stateDir, this.opts.leaseMs === undefined ? {} : { leaseMs: this.opts.leaseMs });
      try {
        const n = this.store.sweepVanished(this.runId, (f) => fs.existsSync(f));
        if (n > 0) log.debug({ records: n }, 'dropped the state of files no longer on disk');
      } catch (e) {
        log.warn({ err: e }, 'could not sweep the sync state (retried next start)');
      }
    }
    this.dispatch.openPool();
    return this.store;
  }

  /** Scheduled sync every intervalMs (and sooner while a connectivity backoff expires). */
  async start(): Promise<void> {
    if (this.sched.running) return;
    this.open();
    this.sched.start(this.opts.intervalMs);
  }

  /** Stop scheduling, abort in-flight uploads (their files restart next run), release threads, LMDB and channels. */
  async stop(): Promise<void> {
    this.sched.stop();
    this.abort?.abort();
    await this.sched.settled();
    await this.dispatch.closePool();
    this.health.dropClient();
    this.settler.close();
    const store = this.store;
    this.store = undefined;
    if (store) {
      await store.flushed();
      await store.close();
    }
  }

  /** Sync now, even while scheduled sync is off or a backoff is pending (one probe first). */
  syncNow(): Promise<SyncResult> {
    return this.exclusive(() => this.round(true)).catch((e: unknown) => {
      this.roundFailed(e);
      throw e;
    });
  }

  /**
   * A round (or probe) that could not run at all: a proto or TLS file missing or unreadable,
   * TLS material refused when the client is made. Not a link failure (no backoff change), but
   * the embedder must hear it: a sync error and stats().lastError, like a refused upload.
   */
  private roundFailed(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    // Our own errors keep their code; anything else (ENOENT, EACCES, a TLS error) is "sync unavailable".
    const code = e instanceof EdgecapError ? e.code : ErrorCodes.UNAVAILABLE;
    const message = `sync could not run: ${err.message}`;
    const nextRetryAt = this.clock.now() + this.opts.intervalMs; // the next scheduled tick tries again
    this.notices.lastError = message;
    log.error({ err, code }, message);
    this.emit('sync-error', { message, code, nextRetryAt } satisfies SyncErrorEvent);
  }

  /**
   * One scheduled tick, as the timer runs it: skipped while the gate is closed or the connectivity
   * backoff has not expired (then resolves undefined). Exposed for tests and embedding apps.
   */
  async runScheduled(): Promise<SyncResult | undefined> {
    if (this.gateFn && !this.gateFn()) return undefined;
    if (this.sched.busy) return undefined;
    if (!this.health.link.ready()) {
      // Offline: the backoff may be long (1 h); a cheap probe at a short fixed cadence notices
      // the link coming back, and then the round starts at once.
      if (!this.health.probeDue()) return undefined;
      return this.exclusive(async () => {
        if (!(await this.health.probe())) {
          // Still unreachable: the backlog is recounted, so the pending counts stay right through an outage.
          this.backlog.countBacklog();
          return undefined;
        }
        this.health.backOnline();
        log.info('ingest server reachable again; syncing now');
        return this.round(false);
      });
    }
    return this.exclusive(() => this.round(false));
  }

  /** Selective sync: scheduled runs only while fn() is true (syncNow ignores the gate). */
  setGate(fn: (() => boolean) | undefined): void {
    this.gateFn = fn;
  }

  stats(): SyncStats {
    const p = this.backlog.pending();
    const s: SyncStats = { ...this.settler.st, pendingFiles: p.files, pendingBytes: p.bytes, failedOnDisk: this.failed.onDisk, offline: this.health.offline, running: this.sched.running };
    if (this.notices.lastError !== undefined) s.lastError = this.notices.lastError;
    if (this.health.link.nextAttemptAt > 0) s.nextRetryAt = this.health.link.nextAttemptAt;
    if (this.captureFirst) s.captureFirst = this.captureFirst.stats();
    return s;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.sched.exclusive(fn);
  }

  // ── one round ────────────────────────────────────────────────────────────────

  private async round(force: boolean): Promise<SyncResult> {
    const res = emptyResult();
    if (!force && !this.health.link.ready()) return res;
    const store = this.open();
    const abort = new AbortController();
    this.abort = abort;
    const held: Work[] = []; // claimed for upload, not yet handed to a runner
    let watchdog: NodeJS.Timeout | undefined;
    let renew: NodeJS.Timeout | undefined;
    // capture first: one control window per second while the round runs (the gap between rounds is no window)
    const cf = this.captureFirst;
    const pace = (step: () => void): void => {
      try {
        step();
      } catch (e) {
        // the embedder's lateness callback failed: the pace stays as it is, sync goes on
        log.warn({ err: e }, 'capture first: could not read capture lateness');
      }
    };
    if (cf) pace(() => cf.restart());
    const pacer = cf ? setInterval(() => pace(() => cf.tick()), WINDOW_MS) : undefined;
    pacer?.unref?.();
    try {
      if (!(await this.health.roundStart(store, res))) {
        res.deferred = this.backlog.countBacklog();
        return res;
      }
      if (abort.signal.aborted) return res;
      const walk = this.backlog.beginWalk();
      // The walk is lazy (it runs ahead of the uploads by one batch): if uploads stall (a link
      // that died mid-round hangs them until keepalive or deadline), count the backlog in full
      // so the pending counts do not read what the walk happened to reach.
      const progress = { files: 0 };
      let seen = 0;
      watchdog = setInterval(() => {
        if (progress.files === seen && !this.backlog.countedBy(walk)) {
          try {
            this.backlog.countBacklog();
          } catch (e) {
            log.debug({ err: e }, 'could not count the backlog');
          }
        }
        seen = progress.files;
      }, this.health.probeIntervalMs);
      watchdog.unref?.();
      renew = setInterval(() => this.renewLeases(store), Math.max(10, store.leaseMs / 3));
      renew.unref?.();

      // Files are scanned and decided lazily, as uploads need them: memory and the time to the
      // first upload do not grow with the backlog.
      const source = this.backlog.prepare(store, res, walk);
      const work = this.backlog.claimInBatches(store, source, this.opts.threads * UPLOADS_PER_THREAD, held, walk);
      await this.dispatch.run({ store, source, work, held, signal: abort.signal, res, progress });
      this.settler.flushForgotten();
      // Claimed but never handed out (the link went down): deferred, released below.
      res.deferred += held.length;
      return res;
    } finally {
      if (this.abort === abort) this.abort = undefined;
      if (watchdog) clearInterval(watchdog);
      if (renew) clearInterval(renew);
      if (pacer) clearInterval(pacer);
      this.backlog.endWalk();
      for (const w of held) this.leased.delete(w.c.path);
      try {
        store.releaseUploads(held.map((w) => w.c.path), this.runId);
      } catch (e) {
        log.warn({ err: e }, 'could not release unused upload claims (they go stale at the next start)');
      }
    }
  }

  /** Keep the upload leases of this round's claims alive (an upload can outlast one lease). */
  private renewLeases(store: StateStore): void {
    try {
      const lost = store.renewLeases([...this.leased], this.runId);
      if (lost.length > 0) log.warn({ files: lost.length }, 'upload leases lost (expired and taken over by another process)');
    } catch (e) {
      log.warn({ err: e }, 'could not renew upload leases');
    }
  }

  /**
   * Move every file in failed/ back where it came from, pending again with a fresh attempt
   * count: `edgecap sync --retry-failed` (see FailedDir.moveBack).
   */
  retryFailed(): Promise<RetryFailedResult> {
    return this.exclusive(async () => {
      const store = this.open();
      const roots = [this.opts.captureDir, ...this.opts.additionalSyncPaths];
      return this.failed.moveBack(roots, this.opts.captureDir, (src) => {
        try {
          store.reopenFile(src);
        } catch (e) {
          log.warn({ err: e, file: src }, 'moved back, but its record could not be reopened (another process holds it)');
        }
      });
    });
  }
}
