import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { DEFAULTS, EdgecapError, ErrorCodes, fromWire, logger } from '@edgecap/core';
import { ManagedWorker } from '@edgecap/core/threads';
import { StateStore } from '@edgecap/store';
import { JanitorCore, type JanitorRound } from './core.js';
import { JanitorError, janitorClosed } from './errors.js';
import type { JanitorWorkerApi, Reply, WorkerInit } from './protocol.js';
import { usageOf, type StatfsFn } from './usage.js';

/**
 * Janitor facade (main thread). A check starts with one statfs here (async, libuv pool); only
 * a disk at or above the threshold takes it to a worker thread (`dist/worker.js`, on the one
 * worker host of @edgecap/core/threads), which walks the capture dir and deletes. The main thread owns the timer, the event
 * emitter and the stats.
 *
 *   timer / checkNow() ──► serial queue ──► statfs ── usage < threshold ──────────────► 'none'
 *                                               │ >= threshold
 *                                               ├─► transport.check() ──► worker: JanitorCore.check()
 *                                               │   (statfs injected → in-process JanitorCore, no statfs here)
 *                          stats + events ◄─────┘  'disk-warning' | 'deleted'
 *
 * The thread is spawned only when a check finds the disk at or above the threshold, and ended
 * once a check leaves it under (an idle edge runs one isolate fewer: ~20–30 MB). Deletions a
 * crashed run left half done are settled at start() from the main thread, as the worker's
 * JanitorCore would have.
 *
 * Lifecycle: stopped ─start()─► started ─stop()─► stopped. A worker exit nobody asked for, or a
 * call it leaves unanswered past callTimeoutMs (the worker is then terminated), fails the
 * in-flight call with EDGECAP_ERR_WORKER_EXITED and the next check starts a new worker.
 */
export interface JanitorOptions {
  captureDir: string;
  stateDir: string;
  /** Same run id the sync engine uses for claims. */
  runId: string;
  intervalMs?: number;
  diskUsageThreshold?: number;
  captureDirThreshold?: number;
  deleteEveryNth?: number;
  /** Injectable for unit tests; functions cannot cross threads, so this runs the checks in-process. */
  statfs?: StatfsFn;
  /** Min ms between two logged/emitted disk warnings (default 600000). */
  warnIntervalMs?: number;
  /** Paths inside the capture dir never to delete (e.g. additional_sync_paths). */
  excludePaths?: string[];
  /** Clock for warning rate limiting (in-process only; default Date.now). */
  now?: () => number;
  /** Force in-process checks (no worker thread). Implied by `statfs`. */
  inProcess?: boolean;
  /**
   * A call to the worker unanswered this long means it is hung (a stalled filesystem): it is
   * terminated, the check fails (counted, 'error' emitted) and the next one starts a new worker.
   * Default 5 min: a check walks the whole capture dir.
   */
  callTimeoutMs?: number;
  /** The main thread's statfs before each check unanswered this long (a stalled filesystem) fails the check. Default 30 s. */
  statfsTimeoutMs?: number;
}

export interface JanitorStats {
  checks: number;
  deletedFiles: number;
  deletedBytes: number;
  warnings: number;
  lastUsage?: number;
  lastCaptureShare?: number;
  /** Failed checks (worker died, fs error). */
  errors: number;
  running: boolean;
  /** A janitor worker thread is alive now (only while the disk is at or above the threshold). */
  thread: boolean;
  /** Janitor worker threads spawned so far. */
  threadStarts: number;
}

export type { JanitorRound };

interface Transport {
  check(): Promise<JanitorRound>;
  close(): Promise<void>;
}

class InProcessTransport implements Transport {
  private readonly core: JanitorCore;
  constructor(o: JanitorOptions) {
    this.core = new JanitorCore(o);
  }
  check(): Promise<JanitorRound> {
    return Promise.resolve().then(() => this.core.check());
  }
  close(): Promise<void> {
    return this.core.close();
  }
}

const DEFAULT_CALL_TIMEOUT_MS = 300_000;
const DEFAULT_STATFS_TIMEOUT_MS = 30_000;

/**
 * The janitor's thread, on the one worker host (@edgecap/core/threads): every call raced against
 * the thread's exit and callTimeoutMs (a hung thread is terminated, never inside a ledger
 * transaction: its store is gated, worker.ts), its logs relayed to this thread's logger.
 */
class WorkerTransport implements Transport {
  private readonly mw: ManagedWorker<JanitorWorkerApi>;
  private readonly ready: Promise<void>;

  constructor(
    init: WorkerInit,
    onUnexpected: (err: EdgecapError) => void,
    private readonly callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
  ) {
    this.mw = new ManagedWorker<JanitorWorkerApi>(new URL('./worker.js', import.meta.url), 'edgecap-janitor', onUnexpected, { callTimeoutMs });
    this.ready = this.call(() => this.mw.call('init', [init])).then(
      () => {
        if (this.mw.state === 'starting') this.mw.started();
      },
      (e: unknown) => {
        // a thread that could not open its ledger is of no use: ended, so the next check starts a new one
        void this.mw.stop();
        throw e;
      },
    );
    this.ready.catch(() => undefined);
  }

  get dead(): boolean {
    return !this.mw.alive;
  }

  /** A reply's error is rebuilt with its own code (ENOENT stays ENOENT). */
  private async call<T>(f: () => Promise<Reply<T>>): Promise<T> {
    const reply = await f();
    if (!reply.ok) throw fromWire(reply.error);
    return reply.value;
  }

  async check(): Promise<JanitorRound> {
    await this.ready;
    return this.call(() => this.mw.call('check', []));
  }

  async close(): Promise<void> {
    await this.mw.stop('close', this.callTimeoutMs);
  }
}

export class Janitor extends EventEmitter {
  private readonly log = logger('janitor');
  private readonly opts: JanitorOptions;
  private transport: Transport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private state: 'stopped' | 'started' = 'stopped';
  private closed = false;
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private readonly s: JanitorStats = { checks: 0, deletedFiles: 0, deletedBytes: 0, warnings: 0, errors: 0, running: false, thread: false, threadStarts: 0 };
  /** The statfs still running (hung filesystem): no second one is queued behind it on the libuv pool. */
  private statfsPending: Promise<unknown> | undefined;

  constructor(opts: JanitorOptions) {
    super();
    this.opts = { ...opts };
  }

  get intervalMs(): number {
    return this.opts.intervalMs ?? DEFAULTS.janitor_interval_ms;
  }

  get threshold(): number {
    return this.opts.diskUsageThreshold ?? DEFAULTS.disk_usage_deletion_threshold;
  }

  private get inProcess(): boolean {
    return this.opts.statfs !== undefined || this.opts.inProcess === true;
  }

  /** Begin periodic checks (first one after one interval). Idempotent. */
  async start(): Promise<void> {
    if (this.closed) throw janitorClosed();
    if (this.state === 'started') return;
    if (this.inProcess) this.ensureTransport();
    else this.settleStaleDeletes();
    this.state = 'started';
    this.s.running = true;
    this.timer = setInterval(() => {
      this.checkNow().catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'janitor check failed'));
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stop periodic checks, wait for an in-flight check, and end the worker thread. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.state = 'stopped';
    this.s.running = false;
    await this.queue.catch(() => undefined);
    const t = this.transport;
    this.transport = undefined;
    if (t) await t.close();
  }

  /** Stop and refuse further use. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  /** One check now (serialised with periodic checks); works whether or not start() was called. */
  checkNow(): Promise<JanitorRound> {
    if (this.closed) return Promise.reject(janitorClosed());
    const run = this.queue.catch(() => undefined).then(() => this.runCheck());
    this.queue = run;
    return run;
  }

  stats(): JanitorStats {
    return { ...this.s, thread: this.transport instanceof WorkerTransport && !this.transport.dead };
  }

  /** What JanitorCore's constructor does in the worker, done once here since the worker may never start. */
  private settleStaleDeletes(): void {
    if (!fs.existsSync(this.opts.stateDir)) return; // no ledger yet: nothing to settle
    const store = new StateStore(this.opts.stateDir);
    try {
      const settled = store.settleStaleDeletes(this.opts.runId, (f) => fs.existsSync(f));
      if (settled) this.log.info({ settled }, 'settled deletions left by an earlier run');
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'could not settle deletions left by an earlier run; the janitor thread retries when it starts');
    } finally {
      void store.close().catch(() => undefined);
    }
  }

  /**
   * Usage of the capture dir's filesystem, off the main thread's stack (libuv pool), raced against
   * statfsTimeoutMs. A statfs still hanging from an earlier check fails this one at once.
   */
  private async usage(): Promise<number> {
    const ms = this.opts.statfsTimeoutMs ?? DEFAULT_STATFS_TIMEOUT_MS;
    const timedOut = (): JanitorError =>
      new JanitorError(ErrorCodes.UNAVAILABLE, `statfs of the capture dir did not answer within ${ms} ms`, { details: { timeoutMs: ms, timeout: true } });
    if (this.statfsPending) throw timedOut();
    const p = fs.promises.statfs(this.opts.captureDir);
    this.statfsPending = p;
    void p.then(
      () => (this.statfsPending = undefined),
      () => (this.statfsPending = undefined),
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      const s = await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timedOut()), ms)))]);
      return usageOf(s).usedFraction;
    } finally {
      clearTimeout(timer);
    }
  }

  private async endThread(): Promise<void> {
    const t = this.transport;
    if (!(t instanceof WorkerTransport)) return;
    this.transport = undefined;
    await t.close();
  }

  private ensureTransport(): Transport {
    if (this.transport && !(this.transport instanceof WorkerTransport && this.transport.dead)) return this.transport;
    if (this.inProcess) {
      this.transport = new InProcessTransport(this.opts);
    } else {
      const init: WorkerInit = {
        captureDir: this.opts.captureDir,
        stateDir: this.opts.stateDir,
        runId: this.opts.runId,
      };
      if (this.opts.diskUsageThreshold !== undefined) init.diskUsageThreshold = this.opts.diskUsageThreshold;
      if (this.opts.captureDirThreshold !== undefined) init.captureDirThreshold = this.opts.captureDirThreshold;
      if (this.opts.deleteEveryNth !== undefined) init.deleteEveryNth = this.opts.deleteEveryNth;
      if (this.opts.excludePaths !== undefined) init.excludePaths = this.opts.excludePaths;
      this.s.threadStarts++;
      this.transport = new WorkerTransport(
        init,
        (err) => {
          this.s.errors++;
          this.log.error({ code: err.code }, err.message);
          if (this.listenerCount('error') > 0) this.emit('error', err);
        },
        this.opts.callTimeoutMs,
      );
    }
    return this.transport;
  }

  /** A check that stopped at statfs: the disk is under the threshold; the capture dir is not walked. */
  private underThreshold(usage: number): JanitorRound {
    return { usage, captureDirBytes: Number.NaN, captureShare: Number.NaN, action: 'none', deletedFiles: 0, freedBytes: 0, rounds: 0, startUsage: usage, warningEmitted: false, skippedClaimed: 0 };
  }

  private async runCheck(): Promise<JanitorRound> {
    let r: JanitorRound | undefined;
    if (!this.inProcess) {
      let usage: number;
      try {
        usage = await this.usage();
      } catch (e) {
        this.s.errors++;
        throw e;
      }
      if (usage < this.threshold) {
        r = this.underThreshold(usage);
        await this.endThread(); // the disk is fine again: no thread kept
      }
    }
    if (!r) {
      const t = this.ensureTransport();
      try {
        r = await t.check();
      } catch (e) {
        this.s.errors++;
        throw e;
      } finally {
        // A checkNow() outside start() does not keep a worker thread alive, nor does a disk
        // brought back under the threshold.
        if (this.transport === t && (this.state !== 'started' || (r !== undefined && r.usage < this.threshold && !this.inProcess))) {
          this.transport = undefined;
          await t.close();
        }
      }
    }
    this.s.checks++;
    this.s.lastUsage = r.usage;
    if (!Number.isNaN(r.captureShare)) this.s.lastCaptureShare = r.captureShare;
    if (r.action === 'warned') {
      const now = (this.opts.now ?? Date.now)();
      r.warningEmitted = now - this.lastWarnAt >= (this.opts.warnIntervalMs ?? 600_000);
    }
    if (r.action === 'warned' && r.warningEmitted) {
      this.lastWarnAt = (this.opts.now ?? Date.now)();
      this.s.warnings++;
      this.log.warn(
        { usage: r.usage, captureShare: r.captureShare },
        'disk usage above threshold but the capture dir holds too little of it to delete captures; free space elsewhere',
      );
      this.emit('disk-warning', { usage: r.usage, captureShare: r.captureShare });
    }
    if (r.deletedFiles > 0) {
      this.s.deletedFiles += r.deletedFiles;
      this.s.deletedBytes += r.freedBytes;
      this.emit('deleted', { files: r.deletedFiles, bytes: r.freedBytes });
    }
    return r;
  }
}
