/**
 * The sync engine: control and scanning on the caller's thread, uploads in a piscina pool.
 *
 *            ┌──────────────── SyncEngine (main thread) ────────────────┐
 *   timer ─► │ gate? ─► link backoff ready? ─► Health probe ─► ReportGaps │
 *  syncNow ─►│      ─► scan capture dir + additional_sync_paths          │
 *            │      ─► per file: id (header | fileIdFor), checkpoint,    │
 *            │         per-file nextRetryAt, claimUpload (vs janitor)    │
 *            │      ─► dispatch ≤ threads × 4 at a time ───────┐         │
 *            └────────────────────────────────────────────────│─────────┘
 *                                                             ▼
 *                  piscina worker threads (niceIncrement below the process: capture first):
 *                  uploaderFor(task).upload() = one attempt, no sleeping (uploader.ts: edgecap | viam)
 *                  read + sha256 ─► Upload(metadata, chunk...) ─► COMMITTED | ALREADY_HAVE | status
 *                  small files (edgecap, ≤ SMALL_FILE_BYTES): ONE task per batch (batch.ts, ≤ 64 files /
 *                  1 MiB) ─► UploadBatch([metadata, chunk]...) ─► a result per file, settled one by one
 *                  (UNIMPLEMENTED: older ingest ─► one file per call from then on)
 *                                                             │
 *            ┌────────────────────────────────────────────────▼─────────┐
 *            │ ok       ─► unchanged since read? ─► unlink ─► forget     │
 *            │                      └ changed ─► keep, new id next round │
 *            │ link/auth ─► ONE backoff for everything; rest of round deferred │
 *            │ server   ─► the same, plus the file's own backoff (unbounded) │
 *            │ rejected ─► move to <stateDir>/failed/<rel> + .reason      │
 *            │ file/local ─► per-file attempts/nextRetryAt               │
 *            └──────────────────────────────────────────────────────────┘
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
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { Piscina } from 'piscina';
import { Backoff, EdgecapError, DEFAULTS, ErrorCodes, logger, systemClock, type Clock } from '@edgecap/core';
import { StateStore, holderOf, type FileState } from '@edgecap/store';
import type { DataSyncClient, Gap } from '@edgecap/proto';
import { probeViamCaptureFile } from '@edgecap/viam';
import { SyncError, classifyStatus, statusName, type FailureKind } from './errors.js';
import { readCaptureHeader } from './header.js';
import { additionalCandidates, captureCandidates, type Candidate } from './scan.js';
import { DEFAULT_CHUNK_BYTES, addressesOf, callMetadata, checkTarget, makeClient, type IngestTarget } from './target.js';
import type { ReadIdentity, UploadOutcome, UploadTask } from './upload.js';
import { createRateLimit, type RateLimitShare } from './link.js';
import { uploaderFor, type Uploader } from './uploader.js';
import { RoundScheduler, countAcked, nextTickDelay, type UploadTally } from './scheduler.js';
import { FailedDir, type RetryFailedResult } from './failed.js';
import { BATCH_MAX_BYTES, BATCH_MAX_FILES, type BatchOutcome, type BatchTask, type CallTask } from './batch.js';

export { type RetryFailedResult } from './failed.js';
export { listFailed } from '@edgecap/core';

export interface SyncOptions {
  captureDir: string;
  /** StateStore dir; the engine opens its own StateStore there. */
  stateDir: string;
  additionalSyncPaths: string[];
  /** Files under additionalSyncPaths modified less than this long ago are left alone (default 10000). */
  fileLastModifiedMs: number;
  intervalMs: number;
  /** maximum_num_sync_threads: size of the upload pool. */
  threads: number;
  partId: string;
  tags: string[];
  ingest: IngestTarget;
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  chunkBytes?: number;
  /** Default true. When false, synced files are kept (checkpoint committed keeps them from re-upload). */
  deleteAfterSync?: boolean;
  /**
   * Run id shared with the janitor of the same process. Claims are leases naming (run id, pid,
   * process start time): another live process's are respected, a dead one's and an earlier
   * run's of this process are taken over. Default random.
   */
  runId?: string;
  /** Injectable clock (backoff, file ages, retry times). */
  clock?: Clock;
  /** Injectable jitter source. */
  random?: () => number;
  /**
   * Attempts at a file that cannot be read locally (EACCES, EIO, ...) before it goes to failed/
   * (default 10). Server answers never count here: only verdicts (rejections) reach failed/.
   */
  maxFileAttempts?: number;
  /** Health probe deadline, ms (default 5000). */
  probeTimeoutMs?: number;
  /**
   * sync_probe_interval_ms: while the ingest is unreachable, one Health probe this often (default
   * 5000), independent of the connectivity backoff; an answer ends the backoff and syncs at once.
   */
  probeIntervalMs?: number;
  /** Absolute upload call deadline, ms (default none: the stall watchdog decides; viam: 120 s + 1 s per 256 KiB). */
  uploadDeadlineMs?: number;
  /** sync_stall_timeout_ms: an upload with no acknowledged progress for this long is cut and retried (default 60000). */
  stallTimeoutMs?: number;
  /** sync_max_bytes_per_second: one cap over all uploads of this engine, all threads (unset: none). */
  maxBytesPerSecond?: number;
  /** How long an upload claim lasts unless renewed, ms (default the store's DEFAULT_LEASE_MS); renewed every third of it. */
  leaseMs?: number;
  /**
   * Capture first: the sync pool's threads run this much nicer than the process (default
   * SYNC_NICE_INCREMENT; 0: at the process's priority). Linux only (a thread's own nice value);
   * capture's threads keep theirs.
   */
  niceIncrement?: number;
}

export interface SyncResult {
  uploaded: number;
  alreadyHad: number;
  bytes: number;
  failed: number;
  deferred: number;
  errors: string[];
}

export interface SyncStats {
  pendingFiles: number;
  pendingBytes: number;
  uploadedFiles: number;
  uploadedBytes: number;
  alreadyHave: number;
  /** Files moved to failed/ by this engine (a counter). */
  failedFiles: number;
  /** Files in <stateDir>/failed/ now (what `--retry-failed` would move back). */
  failedOnDisk: number;
  /** The last failure was the link (unreachable): Health probes run every probeIntervalMs. */
  offline: boolean;
  lastError?: string;
  nextRetryAt?: number;
  running: boolean;
}


export interface FileSyncedEvent {
  path: string;
  fileId: string;
  status: 'committed' | 'already_have';
  bytes: number;
}
export interface SyncErrorEvent {
  message: string;
  code: string;
  nextRetryAt: number;
}
export interface FileFailedEvent {
  path: string;
  reason: string;
  /** Where the file is now (under <stateDir>/failed/). */
  dest: string;
}

interface Work {
  c: Candidate;
  id: string;
  idKey?: string;
  meta: UploadTask['meta'];
  format?: 'viam';
}

const log = logger('sync');

/** Default niceIncrement of sync threads: a draining backlog yields the CPU to capture. */
export const SYNC_NICE_INCREMENT = 10;
/** Uploads of big files in flight per sync thread. */
export const UPLOADS_PER_THREAD = 4;
/**
 * Uploads in flight per sync thread when files are small (piscina concurrentTasksPerWorker):
 * per-file latency (the ingest's group commit, an fsync) is hidden behind more calls on the
 * same connection, and more files share each group commit. Files above SMALL_FILE_BYTES also
 * need one of the UPLOADS_PER_THREAD big slots, so memory stays bounded as before.
 */
export const SMALL_UPLOADS_PER_THREAD = 16;
export const SMALL_FILE_BYTES = 256 * 1024;
/**
 * UploadBatch calls in flight per sync thread (edgecap protocol): each carries up to
 * BATCH_MAX_FILES small files / BATCH_MAX_BYTES (batch.ts) in one piscina task and one gRPC call.
 */
export const BATCHES_PER_THREAD = 4;
/**
 * How long completions gather before their state is dropped in one LMDB transaction. Each
 * transaction is an fsync on the main thread: at 50 ms they were half the edge's CPU per small
 * file. A crash before the batch commits only leaves records of vanished files (swept at start).
 */
const FORGET_BATCH_MS = 250;
/**
 * Claims are taken this many files at a time (one LMDB transaction, one fsync), up to
 * CLAIM_BATCH_BYTES: small files share a transaction, big ones are not held from the janitor
 * long before their upload starts.
 */
export const CLAIM_BATCH_FILES = 128;
export const CLAIM_BATCH_BYTES = 32 * 1024 * 1024;
/** Default sync_probe_interval_ms. */
export const DEFAULT_PROBE_INTERVAL_MS = 5000;
/** Local errors that say nothing about the file (ours are short of fds or memory, or it is being written). */
const TRANSIENT_LOCAL = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ESHRANK']);

/** Pending files and bytes as counted, and the monotonic `settled` totals at that moment. */
interface Count {
  files: number;
  bytes: number;
  atFiles: number;
  atBytes: number;
}

/** `p`, or a rejection as soon as `signal` aborts (p is then abandoned; its outcome is ignored). */
function runUnlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new Error('aborted'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** A counting semaphore (big-file uploads in flight). */
class Slots {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}
  take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiting.push(r));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function emptyResult(): SyncResult {
  return { uploaded: 0, alreadyHad: 0, bytes: 0, failed: 0, deferred: 0, errors: [] };
}

export class SyncEngine extends EventEmitter {
  readonly opts: SyncOptions;
  readonly runId: string;
  private readonly clock: Clock;
  private readonly random: () => number;
  /** The ONE connectivity backoff: while it is not ready, no file is attempted. */
  private readonly link: Backoff;
  /** The wire protocol's side of things the engine needs (probe, gaps); uploads use it in the pool. */
  private readonly uploader: Uploader;
  private store: StateStore | undefined;
  /** Files this engine holds an upload lease on (claimed, not yet settled): renewed while the round runs. */
  private readonly leased = new Set<string>();
  private pool: Piscina | undefined;
  /** The bandwidth cap's shared bucket: the same memory in every pool thread (link.ts). */
  private readonly rateLimit: RateLimitShare | undefined;
  private client: DataSyncClient | undefined;
  /**
   * Which of several ingest addresses this edge uses. Each edge starts at a random one, so a
   * fleet spreads over the nodes; on failure it moves to the next (fail-over).
   */
  private addrIdx = 0;
  /** The ingest answered UNIMPLEMENTED to UploadBatch (an older server): one file per call from then on. */
  private batchOff = false;
  /** Synced-and-deleted files whose state is dropped in the next batch (see forget). */
  private forgetting: { files: string[]; idKeys: string[] } = { files: [], idKeys: [] };
  private forgetTimer: NodeJS.Timeout | undefined;
  /** One round at a time; the timer of scheduled rounds (shared with MemorySyncEngine). */
  private readonly sched: RoundScheduler;
  private abort: AbortController | undefined;
  private gateFn: (() => boolean) | undefined;
  private readonly st: UploadTally = { uploadedFiles: 0, uploadedBytes: 0, alreadyHave: 0, failedFiles: 0 };
  private lastError: string | undefined;
  /** The last failure was the link itself: probe at probeIntervalMs until it answers. */
  private offline = false;
  /** Outages ended so far (backOnline): upload tasks carry it; a thread seeing a newer one reconnects. */
  private channelEpoch = 0;
  /** clock time of the last Health call (the round's or the cadence's). */
  private lastProbeAt = 0;
  private readonly probeIntervalMs: number;
  /** `<stateDir>/failed/`: files with a verdict (failed.ts). */
  private readonly failed: FailedDir;
  /**
   * Pending accounting, right at any moment (an outage, a round stuck on a dead link): files
   * settled (uploaded, or moved to failed/) are counted monotonically; the backlog is the last
   * full count (a round's walk, or the walk a failed probe makes) minus what settled since.
   */
  private readonly settled = { files: 0, bytes: 0 };
  private counted: Count = { files: 0, bytes: 0, atFiles: 0, atBytes: 0 };
  /** The running round's walk so far. */
  private walk: Count | undefined;

  constructor(opts: SyncOptions) {
    super();
    checkTarget(opts.ingest);
    if (!Number.isFinite(opts.threads) || opts.threads < 1) throw new SyncError('file', `threads must be >= 1 (got ${opts.threads})`);
    this.opts = opts;
    this.runId = opts.runId ?? randomUUID();
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.link = new Backoff({ ...opts.backoff, clock: this.clock, random: this.random });
    this.uploader = uploaderFor({ target: opts.ingest });
    this.sched = new RoundScheduler({
      tick: async () => {
        await this.runScheduled();
      },
      nextDelay: () =>
        nextTickDelay({ intervalMs: this.opts.intervalMs, now: this.clock.now(), backoffUntil: this.link.nextAttemptAt, offline: this.offline, lastProbeAt: this.lastProbeAt, probeIntervalMs: this.probeIntervalMs }),
      onError: (e) => this.roundFailed(e),
    });
    this.addrIdx = Math.floor(this.random() * addressesOf(opts.ingest).length);
    this.probeIntervalMs = opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    if (!Number.isFinite(this.probeIntervalMs) || this.probeIntervalMs <= 0) throw new SyncError('file', `probeIntervalMs must be > 0 (got ${opts.probeIntervalMs})`);
    if (opts.stallTimeoutMs !== undefined && !(opts.stallTimeoutMs > 0)) throw new SyncError('file', `stallTimeoutMs must be > 0 (got ${opts.stallTimeoutMs})`);
    if (opts.maxBytesPerSecond !== undefined) {
      if (!(opts.maxBytesPerSecond > 0)) throw new SyncError('file', `maxBytesPerSecond must be > 0 (got ${opts.maxBytesPerSecond})`);
      this.rateLimit = createRateLimit(opts.maxBytesPerSecond);
    }
    this.failed = new FailedDir(opts.stateDir);
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
    if (!this.pool) {
      this.pool = new Piscina({
        filename: new URL('./worker.js', import.meta.url).href,
        minThreads: 0,
        maxThreads: this.opts.threads,
        idleTimeout: 30_000,
        // Several uploads in flight per thread: while one waits on the server's durable commit
        // (fsync, index) the next streams. One file per task still; each task one attempt.
        concurrentTasksPerWorker: SMALL_UPLOADS_PER_THREAD,
      });
    }
    return this.store;
  }

  /**
   * The channel for Health and ReportGaps. Its own subchannel, dropped after every link failure:
   * the next probe connects afresh instead of failing fast while grpc-js's reconnect backoff of
   * the old connection runs (a probe must see the link the moment it is back).
   */
  private mainClient(): DataSyncClient {
    if (!this.client) this.client = makeClient(this.opts.ingest, this.addrIdx, { 'grpc.use_local_subchannel_pool': 1 });
    return this.client;
  }

  private dropClient(): void {
    this.client?.close();
    this.client = undefined;
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
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await pool.destroy();
    this.client?.close();
    this.client = undefined;
    this.flushForgotten();
    if (this.forgetTimer) clearTimeout(this.forgetTimer);
    this.forgetTimer = undefined;
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
    this.lastError = message;
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
    if (!this.link.ready()) {
      // Offline: the backoff may be long (1 h); a cheap probe at a short fixed cadence notices
      // the link coming back, and then the round starts at once.
      if (!this.probeDue()) return undefined;
      return this.exclusive(async () => {
        if (!(await this.probe())) return undefined;
        this.backOnline();
        log.info('ingest server reachable again; syncing now');
        return this.round(false);
      });
    }
    return this.exclusive(() => this.round(false));
  }

  /**
   * An outage ended (a probe got through). The upload threads' channels from before it may be
   * connections that died silently (a rebooted NAT or modem answers only what is sent, and an
   * idle connection sends nothing until its keepalive, up to 40 s later): tasks of the new epoch
   * make those threads close them and connect afresh.
   */
  private backOnline(): void {
    this.link.succeed();
    this.offline = false;
    this.channelEpoch++;
  }

  private probeDue(): boolean {
    return this.offline && this.clock.now() >= this.lastProbeAt + this.probeIntervalMs;
  }

  /**
   * One reachability probe (the Health RPC; for viam, whose API has none, a channel connect).
   * It does not touch the backoff. False: still unreachable (the backlog is recounted, so the
   * pending counts stay right through an outage).
   */
  private async probe(): Promise<boolean> {
    const timeoutMs = this.opts.probeTimeoutMs ?? 5000;
    let err: { code?: number; message: string } | undefined;
    if (this.uploader.probe === 'connect') {
      this.lastProbeAt = this.clock.now();
      const client = this.mainClient() as unknown as grpc.Client;
      err = await new Promise<{ code?: number; message: string } | undefined>((resolve) => client.waitForReady(Date.now() + timeoutMs, (e) => resolve(e ? { code: 14, message: e.message } : undefined)));
    } else {
      const r = await this.unary('Health', {}, timeoutMs);
      // Any answer but the link's own failure means the server is there (auth etc.: the round says).
      if (r.err && classifyStatus(r.err.code) === 'link') err = r.err;
    }
    if (!err) return true;
    this.dropClient();
    const n = addressesOf(this.opts.ingest).length;
    if (n > 1) this.addrIdx = (this.addrIdx + 1) % n; // probe the next address next time
    log.debug({ status: statusName(err.code) }, 'ingest still unreachable');
    this.countBacklog();
    return false;
  }

  /** Selective sync: scheduled runs only while fn() is true (syncNow ignores the gate). */
  setGate(fn: (() => boolean) | undefined): void {
    this.gateFn = fn;
  }

  stats(): SyncStats {
    const p = this.pending();
    const s: SyncStats = { ...this.st, pendingFiles: p.files, pendingBytes: p.bytes, failedOnDisk: this.failed.onDisk, offline: this.offline, running: this.sched.running };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    if (this.link.nextAttemptAt > 0) s.nextRetryAt = this.link.nextAttemptAt;
    return s;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.sched.exclusive(fn);
  }

  // ── one round ────────────────────────────────────────────────────────────────

  private async round(force: boolean): Promise<SyncResult> {
    const res = emptyResult();
    if (!force && !this.link.ready()) return res;
    const store = this.open();
    const abort = new AbortController();
    this.abort = abort;
    const held: Work[] = []; // claimed for upload, not yet handed to a runner
    let watchdog: NodeJS.Timeout | undefined;
    let renew: NodeJS.Timeout | undefined;
    try {
      // A protocol without Health (viam's): there the uploads themselves probe the link.
      const health = this.uploader.probe === 'health';
      const probe: { err?: grpc.ServiceError } = health ? await this.unary('Health', {}, this.opts.probeTimeoutMs ?? 5000) : {};
      if (probe.err) {
        const kind = classifyStatus(probe.err.code);
        this.linkFailure(kind, probe.err, res);
        if (kind === 'link') this.dropClient();
        res.deferred = this.countBacklog();
        return res;
      }
      // The link is back. (A Health answer says nothing about the server's storage or our key:
      // a backoff those started is reset by an upload that goes through, not by a probe.)
      if (health && this.offline) this.backOnline();
      if (this.uploader.reportsGaps && !(await this.reportGaps(store, res))) {
        res.deferred = this.countBacklog();
        return res;
      }
      if (abort.signal.aborted) return res;
      const walk: Count = { files: 0, bytes: 0, atFiles: this.settled.files, atBytes: this.settled.bytes };
      this.walk = walk;
      // The walk is lazy (it runs ahead of the uploads by one batch): if uploads stall (a link
      // that died mid-round hangs them until keepalive or deadline), count the backlog in full
      // so the pending counts do not read what the walk happened to reach.
      let progress = 0;
      let seen = 0;
      watchdog = setInterval(() => {
        if (progress === seen && this.counted !== walk) {
          try {
            this.countBacklog();
          } catch (e) {
            log.debug({ err: e }, 'could not count the backlog');
          }
        }
        seen = progress;
      }, this.probeIntervalMs);
      watchdog.unref?.();
      renew = setInterval(() => this.renewLeases(store), Math.max(10, store.leaseMs / 3));
      renew.unref?.();

      // Files are scanned and decided lazily, as uploads need them: memory and the time to the
      // first upload do not grow with the backlog.
      const source = this.prepare(store, res, walk);
      const work = this.claimInBatches(store, source, this.opts.threads * UPLOADS_PER_THREAD, held, walk);
      let linkDown = false;
      const bigSlots = new Slots(this.opts.threads * UPLOADS_PER_THREAD);
      // Slow start: `threads` uploads first; the rest of the pipeline (threads × SMALL_UPLOADS_PER_THREAD)
      // joins only after one upload succeeded this round, so a link that fails right after the
      // probe costs at most `threads` attempts (no herd).
      let opened = false;
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const batchSlots = new Slots(this.opts.threads * BATCHES_PER_THREAD);
      const runner = async (extra: boolean): Promise<void> => {
        if (extra) await gate;
        /** Pulled while filling a batch, not batchable with it: this runner's next file. */
        let carry: Work | undefined;
        try {
          // Stopping ends the walk; a link that went down only stops the uploads (the rest of the
          // round is counted as deferred, as a failed probe counts it).
          while (!abort.signal.aborted) {
            if (carry && linkDown) {
              held.push(carry); // claimed, never sent: released with the round's other unsent claims
              carry = undefined;
            }
            // Once the link is down the rest is only counted: read past the claims.
            const next: IteratorResult<Work> = carry ? { done: false, value: carry } : linkDown ? source.next() : work.next();
            carry = undefined;
            if (next.done) return;
            const w = next.value;
            if (linkDown) {
              res.deferred++;
              continue;
            }
            if (this.batchable(w)) {
              // Small files travel together: up to BATCH_MAX_FILES / BATCH_MAX_BYTES per call. The
              // file waits for a call slot back in the queue, not in this runner's hands: whoever
              // gets a slot first takes it with the rest (else every waiting runner would end up
              // sending a batch of one).
              held.unshift(w);
              await batchSlots.take();
              const first = linkDown ? undefined : work.next();
              if (!first || first.done) {
                batchSlots.give();
                continue;
              }
              if (!this.batchable(first.value)) {
                batchSlots.give();
                carry = first.value;
                continue;
              }
              const group = [first.value];
              let bytes = first.value.c.size;
              while (group.length < BATCH_MAX_FILES && !linkDown) {
                const n = work.next();
                if (n.done) break;
                if (!this.batchable(n.value) || bytes + n.value.c.size > BATCH_MAX_BYTES) {
                  carry = n.value;
                  break;
                }
                group.push(n.value);
                bytes += n.value.c.size;
              }
              let done: Awaited<ReturnType<typeof this.uploadOne>>;
              try {
                done = await this.uploadGroup(store, group, abort.signal, res);
                progress += group.length;
              } catch (e) {
                res.errors.push(`${group.length} files from ${group[0]!.c.path}: ${(e as Error).message}`);
                log.warn({ err: e, files: group.length }, 'upload bookkeeping failed');
                res.deferred += group.length;
                continue;
              } finally {
                for (const g of group) this.leased.delete(g.c.path);
                batchSlots.give();
              }
              if (done === 'link') linkDown = true;
              if (done === 'ok' && !opened) {
                opened = true;
                open();
              }
              continue;
            }
            let done: Awaited<ReturnType<typeof this.uploadOne>>;
            const big = w.c.size > SMALL_FILE_BYTES;
            try {
              if (big) await bigSlots.take();
              done = await this.uploadOne(store, w, abort.signal, res);
              progress++;
              this.leased.delete(w.c.path);
            } catch (e) {
              this.leased.delete(w.c.path);
              // e.g. the state store cannot write (disk full): this file waits for the next round,
              // and the round's other uploads are still awaited before it ends.
              res.errors.push(`${w.c.path}: ${(e as Error).message}`);
              log.warn({ err: e, file: w.c.path }, 'upload bookkeeping failed');
              res.deferred++;
              continue;
            } finally {
              if (big) bigSlots.give();
            }
            if (done === 'link') linkDown = true;
            if (done === 'ok' && !opened) {
              opened = true;
              open();
            }
          }
        } finally {
          if (carry) held.push(carry);
        }
      };
      const bases = Promise.all(Array.from({ length: this.opts.threads }, () => runner(false))).finally(() => open());
      const extras = this.opts.threads * (SMALL_UPLOADS_PER_THREAD - 1);
      await Promise.all([bases, ...Array.from({ length: extras }, () => runner(true))]);
      this.flushForgotten();
      // Claimed but never handed out (the link went down): deferred, released below.
      res.deferred += held.length;
      return res;
    } finally {
      if (this.abort === abort) this.abort = undefined;
      if (watchdog) clearInterval(watchdog);
      if (renew) clearInterval(renew);
      this.walk = undefined;
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

  private unary(method: 'Health' | 'ReportGaps', req: object, timeoutMs: number): Promise<{ err?: grpc.ServiceError; res?: unknown }> {
    const client = this.mainClient() as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => grpc.ClientUnaryCall>;
    if (method === 'Health') this.lastProbeAt = this.clock.now();
    return new Promise((resolve) => {
      const call = client[method]!.call(this.client, req, callMetadata(this.opts.ingest), { deadline: Date.now() + timeoutMs }, (err, r) =>
        resolve(err ? { err } : { res: r }),
      );
      const onAbort = (): void => call.cancel();
      this.abort?.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A failure that makes the whole round wait (`link`, `auth`, `server`): one backoff for
   * everything, surfaced as a sync error. Only `link` means offline (probes at their cadence).
   */
  private linkFailure(kind: FailureKind, err: { code?: number; details?: string; message: string }, res: SyncResult): void {
    this.link.fail();
    this.offline = kind === 'link';
    const nextRetryAt = this.link.nextAttemptAt;
    const status = statusName(err.code);
    const why = err.details || err.message;
    let message: string;
    let code: string;
    if (kind === 'auth') {
      code = ErrorCodes.UNAUTHENTICATED;
      message = `ingest server refused our credentials (${status}): ${why} — check ingest.api_key`;
    } else if (kind !== 'link') {
      // Its storage, fds or load: the files wait (nothing goes to failed/) and are retried.
      code = ErrorCodes.UNAVAILABLE;
      message = `ingest server could not take the upload (${status}): ${why} — files wait and are retried`;
    } else {
      code = ErrorCodes.UNAVAILABLE;
      message = `ingest server unreachable (${status}): ${why}`;
      const n = addressesOf(this.opts.ingest).length;
      if (n > 1) {
        // Fail over: next address for the probe and for new uploads.
        this.addrIdx = (this.addrIdx + 1) % n;
        this.client?.close();
        this.client = undefined;
      }
    }
    this.lastError = message;
    res.errors.push(message);
    log.warn({ code, nextRetryAt }, message);
    this.emit('sync-error', { message, code, nextRetryAt } satisfies SyncErrorEvent);
  }

  private async reportGaps(store: StateStore, res: SyncResult): Promise<boolean> {
    const gaps = store.unreportedGaps();
    if (gaps.length === 0) return true;
    const wire: Gap[] = gaps.map((g) => ({
      part_id: this.opts.partId,
      resource_kind: g.kind,
      resource_name: g.name,
      method: g.method,
      from_seq: g.from_seq,
      to_seq: g.to_seq,
      reason: g.reason,
      time_us: g.time_us,
    }));
    const r = await this.unary('ReportGaps', { gaps: wire }, 10_000);
    if (r.err) {
      const kind = classifyStatus(r.err.code);
      if (kind === 'link' || kind === 'auth') {
        this.linkFailure(kind, r.err, res);
        if (kind === 'link') this.dropClient();
        return false;
      }
      const msg = `ReportGaps failed (${statusName(r.err.code)}): ${r.err.details}`;
      res.errors.push(msg);
      log.warn(msg);
      return true; // gaps stay unreported; uploads go on
    }
    store.markGapsReported(gaps);
    return true;
  }

  /** Capture files, then each additional_sync_paths root's files old enough to sync. */
  private *candidates(now: number): Generator<Candidate> {
    yield* captureCandidates(this.opts.captureDir);
    const minAge = this.opts.fileLastModifiedMs ?? DEFAULTS.file_last_modified_millis;
    for (const root of this.opts.additionalSyncPaths) yield* additionalCandidates(root, minAge, now, [this.opts.stateDir]);
  }

  /**
   * Count the backlog (no header reads; one LMDB read per file): what a failed probe defers,
   * and the pending counts until the next count. Returns the number of files.
   */
  private countBacklog(): number {
    let files = 0;
    let bytes = 0;
    for (const c of this.candidates(this.clock.now())) {
      const rec = this.store?.fileState(c.path);
      if (rec && (rec.status === 'deleting' || rec.status === 'deleted_by_janitor' || rec.status === 'failed')) continue;
      if (rec?.status === 'committed' && this.opts.deleteAfterSync === false) continue;
      files++;
      bytes += c.size;
    }
    this.counted = { files, bytes, atFiles: this.settled.files, atBytes: this.settled.bytes };
    return files;
  }

  /** Pending now: the last count less what settled since, or the running walk if it found more. */
  private pending(): { files: number; bytes: number } {
    const { counted: c, walk: w, settled: s } = this;
    let files = c.files - (s.files - c.atFiles);
    let bytes = c.bytes - (s.bytes - c.atBytes);
    if (w) {
      files = Math.max(files, w.files - (s.files - w.atFiles));
      bytes = Math.max(bytes, w.bytes - (s.bytes - w.atBytes));
    }
    return { files: Math.max(0, files), bytes: Math.max(0, bytes) };
  }

  private settle(c: Candidate): void {
    this.settled.files++;
    this.settled.bytes += c.size;
  }

  /** Scan and decide, per file, whether it goes out this round (lazily: one file per pull). */
  private *prepare(store: StateStore, res: SyncResult, walk: Count): Generator<Work> {
    const now = this.clock.now();
    const pending = (c: Candidate): void => {
      walk.files++;
      walk.bytes += c.size;
    };
    for (const c of this.candidates(now)) {
      let id: string;
      let idKey: string | undefined;
      let meta: UploadTask['meta'];
      if (c.source === 'capture') {
        const h = readCaptureHeader(c.path);
        // Not ours: a viam-server `.capture` file is uploaded through the viam converter.
        const vm = 'reason' in h ? probeViamCaptureFile(c.path) : undefined;
        if (vm) {
          const vid = `viam-${createHash('sha256').update(`${c.path}\0${c.size}\0${Math.floor(c.mtimeMs)}`).digest('hex').slice(0, 32)}`;
          const vmeta: UploadTask['meta'] = { file_id: vid, part_id: this.opts.partId, resource_kind: vm.component_type, resource_name: vm.component_name, method: vm.method_name, data_type: vm.type === 'DATA_TYPE_BINARY_SENSOR' ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR', tags: [...this.opts.tags], file_name: c.rel, source: 'capture' };
          const vrec = store.fileState(c.path);
          const go = vrec ? this.eligible(store, c, vrec, vid, now, res) : 'go';
          if (go !== 'skip') pending(c);
          if (go !== 'go') continue;
          yield { c, id: vid, meta: vmeta, format: 'viam' };
          continue;
        }
        if ('reason' in h && h.transient) {
          log.debug({ file: c.path, reason: h.reason }, 'capture file not readable now; next round');
          pending(c);
          continue;
        }
        if ('reason' in h) {
          const rec = store.fileState(c.path);
          if (rec && (rec.status === 'deleting' || rec.status === 'deleted_by_janitor')) continue;
          if (store.claimUpload(c.path, this.runId, { id: rec?.id ?? `unreadable:${randomUUID()}`, source: 'capture', size: c.size })) {
            this.moveToFailed(store, c, `unreadable capture header: ${h.reason}`);
            res.failed++;
          }
          continue;
        }
        const hd = h.header;
        id = hd.id;
        meta = {
          file_id: id,
          part_id: hd.part_id || this.opts.partId,
          resource_kind: hd.kind,
          resource_name: hd.name,
          method: hd.method,
          data_type: hd.type === 'binary' ? 'DATA_TYPE_BINARY' : 'DATA_TYPE_TABULAR',
          tags: [...new Set([...this.opts.tags, ...(hd.tags ?? [])])],
          file_name: c.rel,
          source: 'capture',
        };
      } else {
        idKey = `${c.path}\0${c.size}\0${Math.floor(c.mtimeMs)}`;
        const key = idKey;
        id = store.fileIdFor(key, randomUUID);
        meta = { file_id: id, part_id: this.opts.partId, data_type: 'DATA_TYPE_FILE', tags: [...this.opts.tags], file_name: c.rel, source: c.root };
      }
      const rec = store.fileState(c.path);
      const go = rec ? this.eligible(store, c, rec, id, now, res) : 'go';
      if (go !== 'skip') pending(c);
      if (go !== 'go') continue;
      yield idKey === undefined ? { c, id, meta } : { c, id, idKey, meta };
    }
    // The walk is complete: it is the backlog now (the same object: claims lost after this
    // point still correct it).
    this.counted = walk;
  }

  /** 'go': upload it now; 'later': pending, its own retry time is not due; 'skip': not ours to send. */
  private eligible(store: StateStore, c: Candidate, rec: FileState, id: string, now: number, res: SyncResult): 'go' | 'later' | 'skip' {
    switch (rec.status) {
      case 'deleting':
      case 'deleted_by_janitor':
        return 'skip'; // the janitor has it
      case 'failed':
        if (rec.id === id) return 'skip';
        return this.reopen(store, c, id);
      case 'committed':
        // The file exists again (kept by deleteAfterSync=false, or new content at the same path).
        if (this.opts.deleteAfterSync === false && rec.id === id) return 'skip';
        return this.reopen(store, c, id);
      case 'uploading':
        // In flight in this run, or in another live process: not ours. A stale lease (its owner
        // died, or it expired): restart from the beginning.
        return holderOf(rec, this.runId) === 'stale' ? 'go' : 'skip';
      case 'pending':
        if (rec.nextRetryAt > now) {
          res.deferred++;
          return 'later';
        }
        return 'go';
    }
  }

  /** committed | failed → pending for new content; 'skip' if another process changed it meanwhile. */
  private reopen(store: StateStore, c: Candidate, id: string): 'go' | 'skip' {
    try {
      store.reopenFile(c.path, id);
      return 'go';
    } catch (e) {
      if ((e as { code?: string }).code !== ErrorCodes.ILLEGAL_TRANSITION) throw e;
      return 'skip';
    }
  }

  /**
   * Claim the files `source` decides on in batches, one LMDB commit per batch (the janitor can
   * no longer take them), and hand them out one by one. `held` lists the claimed files not yet
   * handed out: the round releases them when it ends early.
   */
  private *claimInBatches(store: StateStore, source: Iterator<Work>, minBatch: number, held: Work[], walk: Count): Generator<Work> {
    const maxFiles = Math.max(minBatch, CLAIM_BATCH_FILES);
    for (;;) {
      if (held.length > 0) {
        yield held.shift()!;
        continue;
      }
      const take: Work[] = [];
      let bytes = 0;
      for (let r = source.next(); !r.done; r = source.next()) {
        take.push(r.value);
        bytes += r.value.c.size;
        if (take.length >= maxFiles || (take.length >= minBatch && bytes >= CLAIM_BATCH_BYTES)) break;
      }
      if (take.length === 0) return;
      const won = store.claimUploads(take.map((w) => ({ file: w.c.path, init: { id: w.id, source: w.c.source, size: w.c.size } })), this.runId);
      take.forEach((w, i) => {
        if (won[i]) {
          held.push(w);
          this.leased.add(w.c.path);
        }
        else {
          // the janitor (or a live claim) has it: not pending for us
          walk.files--;
          walk.bytes -= w.c.size;
        }
      });
    }
  }

  /** What every upload task (one file or a batch) carries about the call: where, which channel, its time limits, its priority. */
  private callTask(): CallTask {
    const t: CallTask = { target: this.opts.ingest, addressIndex: this.addrIdx, channelEpoch: this.channelEpoch, niceIncrement: this.opts.niceIncrement ?? SYNC_NICE_INCREMENT };
    if (this.opts.uploadDeadlineMs !== undefined) t.deadlineMs = this.opts.uploadDeadlineMs;
    if (this.opts.stallTimeoutMs !== undefined) t.stallTimeoutMs = this.opts.stallTimeoutMs;
    return t;
  }

  /** Upload one claimed file and settle its state. */
  private async uploadOne(store: StateStore, w: Work, signal: AbortSignal, res: SyncResult): Promise<'ok' | 'link' | 'failed' | 'retry' | 'skip'> {
    const { c } = w;
    const task: UploadTask = { ...this.callTask(), path: c.path, meta: w.meta, chunkBytes: this.opts.chunkBytes ?? DEFAULT_CHUNK_BYTES };
    if (this.rateLimit) task.rateLimit = this.rateLimit;
    if (w.format) task.format = w.format;
    let out: UploadOutcome;
    try {
      // No `signal` for piscina: it runs at most ONE abortable task per worker, which would undo
      // concurrentTasksPerWorker. stop() aborts here and then destroys the pool (terminating the
      // workers), so the upload is abandoned all the same.
      out = await runUnlessAborted(this.pool!.run(task) as Promise<UploadOutcome>, signal);
    } catch (e) {
      // Aborted by stop(), or the worker died: the file restarts from its beginning next run.
      store.releaseUpload(c.path, this.runId);
      res.deferred++;
      if (!signal.aborted) res.errors.push(`upload worker failed for ${c.path}: ${(e as Error).message}`);
      return 'retry';
    }
    return this.settleOutcome(store, w, out, res);
  }

  /** Small files go in UploadBatch calls: edgecap protocol, an ingest that has it, no bandwidth cap (its pieces are per file). */
  private batchable(w: Work): boolean {
    return this.uploader.protocol === 'edgecap' && !this.batchOff && !this.rateLimit && w.format === undefined && w.c.size <= SMALL_FILE_BYTES;
  }

  /**
   * Upload claimed small files in ONE UploadBatch call (one piscina task) and settle each as
   * uploadOne does. The whole call failing is one link/server failure for all of them; an ingest
   * without UploadBatch (UNIMPLEMENTED, remembered) or a batch it refuses as a whole sends each
   * file on its own, so every file gets its own verdict.
   */
  private async uploadGroup(store: StateStore, ws: Work[], signal: AbortSignal, res: SyncResult): Promise<'ok' | 'link' | 'failed' | 'retry' | 'skip'> {
    if (ws.length === 1) return this.uploadOne(store, ws[0]!, signal, res);
    const task: BatchTask = { ...this.callTask(), kind: 'batch', files: ws.map((w) => ({ path: w.c.path, meta: w.meta })) };
    const paths = ws.map((w) => w.c.path);
    let out: BatchOutcome;
    try {
      out = await runUnlessAborted(this.pool!.run(task) as Promise<BatchOutcome>, signal);
    } catch (e) {
      store.releaseUploads(paths, this.runId);
      res.deferred += ws.length;
      if (!signal.aborted) res.errors.push(`upload worker failed for a batch of ${ws.length} files from ${paths[0]}: ${(e as Error).message}`);
      return 'retry';
    }
    const worst = (dones: Awaited<ReturnType<typeof this.uploadOne>>[]): Awaited<ReturnType<typeof this.uploadOne>> =>
      dones.includes('link') ? 'link' : dones.includes('ok') ? 'ok' : dones[0]!;
    if (!out.ok) {
      if (out.unimplemented || out.kind === 'rejected') {
        if (out.unimplemented && !this.batchOff) {
          this.batchOff = true;
          log.info({ address: addressesOf(this.opts.ingest)[this.addrIdx] }, 'ingest server has no UploadBatch (older version): small files go one per call');
        } else if (!out.unimplemented) log.warn({ files: ws.length, err: out.message }, 'ingest refused an upload batch as a whole: its files go one per call');
        // One after another, as the runners would have sent them: a link failing on the first
        // leaves the rest unsent (released, deferred), so the fallback makes no herd.
        const dones: Awaited<ReturnType<typeof this.uploadOne>>[] = [];
        for (let k = 0; k < ws.length; k++) {
          const d = await this.uploadOne(store, ws[k]!, signal, res);
          dones.push(d);
          if (d === 'link' || signal.aborted) {
            const rest = ws.slice(k + 1).map((w) => w.c.path);
            store.releaseUploads(rest, this.runId);
            res.deferred += rest.length;
            break;
          }
        }
        return worst(dones);
      }
      // Nothing is known about any file's bytes: all wait (one transaction), one link failure.
      if (out.kind === 'server') {
        for (const w of ws) {
          const attempts = (store.fileState(w.c.path)?.attempts ?? 0) + 1;
          store.releaseUpload(w.c.path, this.runId, { attempts, nextRetryAt: this.clock.now() + this.fileDelay(attempts), reason: `${statusName(out.grpcCode)}: ${out.message}` });
        }
      } else store.releaseUploads(paths, this.runId);
      this.linkFailure(out.kind, { code: out.grpcCode, message: out.message }, res);
      res.deferred += ws.length;
      return 'link';
    }
    const files = out.files;
    return worst(ws.map((w, k) => this.settleOutcome(store, w, files[k]!, res)));
  }

  /** Settle one file's outcome: delete and forget, keep, back off, or move to failed/. */
  private settleOutcome(store: StateStore, w: Work, out: UploadOutcome, res: SyncResult): 'ok' | 'link' | 'failed' | 'retry' | 'skip' {
    const { c } = w;
    if (out.ok) {
      // Delete only the file that was read: an arbitrary file appended to (or replaced) after
      // the worker's stat still holds bytes the server has not got.
      const changed = this.changedSince(c, out.read);
      let deleted = false;
      if (this.opts.deleteAfterSync !== false && !changed) {
        try {
          // unlink, not rmSync: no lstat first, one syscall per synced file.
          fs.unlinkSync(c.path);
          deleted = true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') deleted = true;
          else log.warn({ err: e, file: c.path }, 'synced file could not be deleted; it will be re-sent and answered ALREADY_HAVE');
        }
      }
      // Deleted: its state goes with it, batched with other completions (a crash before the
      // batch commits leaves a record of a vanished file, which the next start sweeps). Kept:
      // it is marked committed so it is not sent again. Changed: pending, and its old id key
      // is dropped, so its new content goes out next round as a new file (a new file id).
      if (deleted) this.forget(c.path, w.idKey);
      else if (changed) {
        log.info({ file: c.path, why: changed }, 'file changed after it was read: kept; its new content goes out as a new file');
        store.releaseUpload(c.path, this.runId, { attempts: 0, nextRetryAt: 0 }, w.idKey);
      } else store.commitUpload(c.path, this.runId, w.id);
      if (!changed) this.settle(c);
      this.link.succeed();
      this.offline = false;
      countAcked(res, this.st, out.status, out.bytes);
      this.emit('file-synced', { path: c.path, fileId: w.id, status: out.status, bytes: out.bytes } satisfies FileSyncedEvent);
      return 'ok';
    }
    const rec = store.fileState(c.path);
    if (out.kind === 'link' || out.kind === 'auth' || out.kind === 'server') {
      // Nothing wrong with the bytes: the file waits, however long, and never goes to failed/.
      // A server fault (its storage, fds, load) also starts the file's own backoff (unbounded),
      // so one file the server keeps choking on does not hold up the others.
      const patch: Partial<Pick<FileState, 'attempts' | 'nextRetryAt' | 'reason'>> = {};
      if (out.kind === 'server') {
        const attempts = (rec?.attempts ?? 0) + 1;
        Object.assign(patch, { attempts, nextRetryAt: this.clock.now() + this.fileDelay(attempts), reason: `${statusName(out.grpcCode)}: ${out.message}` });
      }
      store.releaseUpload(c.path, this.runId, patch);
      this.linkFailure(out.kind, { code: out.grpcCode, message: out.message }, res);
      res.deferred++;
      return 'link';
    }
    if (out.kind === 'rejected') {
      // A verdict about the bytes (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS).
      this.moveToFailed(store, c, `server rejected the upload (${out.grpcCode === undefined ? 'invalid' : statusName(out.grpcCode)}): ${out.message}`);
      this.settle(c);
      res.failed++;
      return 'failed';
    }
    if (out.kind === 'local' && out.errno === 'ENOENT') {
      store.releaseUpload(c.path, this.runId);
      return 'skip'; // vanished under us
    }
    // One attempt went wrong on our side: the file retries on its own backoff. Only a file that
    // keeps failing to be read (EACCES, EIO, ...) goes to failed/, after maxFileAttempts.
    const attempts = (rec?.attempts ?? 0) + 1;
    const unreadable = out.kind === 'local' && !TRANSIENT_LOCAL.has(out.errno ?? '');
    const max = this.opts.maxFileAttempts ?? 10;
    if (unreadable && attempts >= max) {
      this.moveToFailed(store, c, `cannot be read locally (${attempts} attempts): ${out.message}`);
      this.settle(c);
      res.failed++;
      return 'failed';
    }
    store.releaseUpload(c.path, this.runId, { attempts, nextRetryAt: this.clock.now() + this.fileDelay(attempts), reason: out.message });
    res.errors.push(`${c.path}: ${out.message}`);
    this.lastError = `${c.path}: ${out.message}`;
    res.deferred++;
    return 'retry';
  }

  /** The file's own retry delay after its n-th failed attempt: the link backoff's schedule, jittered. */
  private fileDelay(attempts: number): number {
    const base = this.link.baseDelay(attempts);
    return Math.round(base + base * this.link.jitter * (this.random() * 2 - 1));
  }

  /** Why `c` is not the file an upload read (undefined: it is); after the server's ack. */
  private changedSince(c: Candidate, read: ReadIdentity | undefined): string | undefined {
    let now: fs.Stats;
    try {
      now = fs.lstatSync(c.path);
    } catch {
      return undefined; // gone already: nothing to keep
    }
    const was = read ?? { size: c.size, mtimeMs: c.mtimeMs, ino: now.ino, dev: now.dev };
    if (now.size !== was.size) return `size ${was.size} -> ${now.size}`;
    if (now.mtimeMs !== was.mtimeMs) return 'modified';
    if (now.ino !== was.ino || now.dev !== was.dev) return 'replaced (another inode)';
    return undefined;
  }

  private forget(file: string, idKey: string | undefined): void {
    this.forgetting.files.push(file);
    if (idKey !== undefined) this.forgetting.idKeys.push(idKey);
    this.forgetTimer ??= setTimeout(() => this.flushForgotten(), FORGET_BATCH_MS);
  }

  /** Commit the queued forgets in one transaction; on failure (disk full) they wait for the next try. */
  private flushForgotten(): void {
    if (this.forgetTimer) clearTimeout(this.forgetTimer);
    this.forgetTimer = undefined;
    const { files, idKeys } = this.forgetting;
    if (!this.store || (files.length === 0 && idKeys.length === 0)) return;
    try {
      this.store.forgetFiles(files, idKeys);
      this.forgetting = { files: [], idKeys: [] };
    } catch (e) {
      log.warn({ err: e, files: files.length }, 'could not drop the state of synced files; retrying');
      this.forgetTimer = setTimeout(() => this.flushForgotten(), 1000);
    }
  }

  /** Move `c` to failed/ (failed.ts) and record the verdict: a `file-failed` event. */
  private moveToFailed(store: StateStore, c: Candidate, reason: string): void {
    const dest = this.failed.put(c, reason, this.clock.now());
    store.failUpload(c.path, this.runId, reason);
    this.st.failedFiles++;
    this.lastError = `${c.path}: ${reason}`;
    log.warn({ file: c.path, dest }, reason);
    this.emit('file-failed', { path: c.path, reason, dest } satisfies FileFailedEvent);
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
